#!/bin/bash
# Side by side, in one run, on this machine: cnet against Docker (Debian's docker.io), each in a
# throwaway network namespace of its own, measured the same way (issue 7; this first version
# covers Docker only, and two of the benchmarks):
#   1. attach: POST /networks/{id}/connect through each daemon's API socket (curl's time_total),
#      for N containers one after the other; median and p99.
#   3. embedded DNS: dnsperf -c 8 inside a container's namespace against 127.0.0.11, N names.
# Prints a markdown table and writes it to bench/results/<date>.md. Root; stops and removes
# everything it started (dockerd, its state, namespaces, cnet's host).
#
#   sudo bench/compare/run.sh           # N=100
#   sudo N=500 bench/compare/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${N:-100}
WORK=$(mktemp -d /tmp/cnet-compare-XXXXXX)
NS=cnetcmp$$
export DEBIAN_FRONTEND=noninteractive
need=()
for c in dockerd:docker.io containerd:containerd dnsperf:dnsperf busybox:busybox-static curl:curl jq:jq nft:nftables; do
  command -v "${c%%:*}" >/dev/null || need+=("${c##*:}")
done
if [ ${#need[@]} -gt 0 ]; then apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null; fi
go build -o "$WORK/cnet" ./cmd/cnet

cleanup() {
  if [ -S "$WORK/docker.sock" ]; then
    docker -H "unix://$WORK/docker.sock" rm -f $(docker -H "unix://$WORK/docker.sock" ps -aq) >/dev/null 2>&1 || true
  fi
  [ -f "$WORK/docker.pid" ] && kill "$(cat "$WORK/docker.pid")" 2>/dev/null && sleep 3 || true
  ip netns del "$NS" 2>/dev/null || true
  umount -R "$WORK/dexec" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# stats FILE: median and p99 (ms) of one number (seconds) per line.
stats() { sort -n "$1" | awk '{v[NR]=$1*1000} END {printf "%.2f %.2f\n", v[int((NR+1)/2)], v[int(NR*0.99+0.999)]}'; }
# connect SOCK NET CONTAINER: one timed connect call.
connect() { curl -s -o /dev/null -w '%{time_total}\n' --unix-socket "$1" -X POST -H 'Content-Type: application/json' \
  -d "{\"Container\":\"$3\"}" "http://x/v1.41/networks/$2/connect"; }
names() { for i in $(seq 1 "$N"); do echo "e$i A"; done > "$1"; }

echo "== Docker: dockerd $(dockerd --version | awk '{print $3}' | tr -d ,) in namespace $NS"
ip netns add "$NS"
ip -n "$NS" link set lo up
mkdir -p "$WORK/ddata" "$WORK/dexec" "$WORK/rootfs/bin"
nsenter --net="/run/netns/$NS" dockerd --data-root "$WORK/ddata" --exec-root "$WORK/dexec" -H "unix://$WORK/docker.sock" \
  --pidfile "$WORK/docker.pid" --dns 127.0.0.1 >"$WORK/dockerd.log" 2>&1 &
D="docker -H unix://$WORK/docker.sock"
for _ in $(seq 1 120); do $D version >/dev/null 2>&1 && break; sleep 0.5; done
cp "$(command -v busybox)" "$WORK/rootfs/bin/busybox"
tar -C "$WORK/rootfs" -c . | $D import - busybox >/dev/null
$D network create attachnet >/dev/null
$D network create dnsnet >/dev/null
for i in $(seq 1 "$N"); do $D run -d --name e$i --net dnsnet busybox /bin/busybox sleep 3600 >/dev/null; done
$D run -d --name client --net dnsnet busybox /bin/busybox sleep 3600 >/dev/null
for i in $(seq 1 "$N"); do connect "$WORK/docker.sock" attachnet "e$i"; done > "$WORK/docker-attach.txt"
names "$WORK/names.txt"
PID=$($D inspect -f '{{.State.Pid}}' client)
DOCKER_QPS=$(nsenter -t "$PID" -n dnsperf -s 127.0.0.11 -d "$WORK/names.txt" -c 8 -l 10 2>&1 | awk '/Queries per second/ {print $4}')
$D rm -f $($D ps -aq) >/dev/null
kill "$(cat "$WORK/docker.pid")"; sleep 3; rm -f "$WORK/docker.pid"

echo "== cnet in a throwaway host namespace"
cat > "$WORK/cnet.sh" <<INNER
set -e
"$WORK/cnet" daemon --data-root "$WORK/cdata" --exec-root "$WORK/cexec" -H "unix://$WORK/cnet.sock" >"$WORK/cnetd.log" 2>&1 &
for _ in \$(seq 1 100); do "$WORK/cnet" -H "unix://$WORK/cnet.sock" network ls >/dev/null 2>&1 && break; sleep 0.1; done
c() { "$WORK/cnet" -H "unix://$WORK/cnet.sock" "\$@"; }
c network create attachnet >/dev/null
c network create dnsnet >/dev/null
for i in \$(seq 1 $N); do c run -d --name e\$i --net dnsnet busybox sleep 3600 >/dev/null; done
c run -d --name client --net dnsnet busybox sleep 3600 >/dev/null
for i in \$(seq 1 $N); do curl -s -o /dev/null -w '%{time_total}\n' --unix-socket "$WORK/cnet.sock" -X POST -H 'Content-Type: application/json' \
  -d "{\"Container\":\"e\$i\"}" "http://x/v1.41/networks/attachnet/connect"; done > "$WORK/cnet-attach.txt"
KEY=\$(c inspect -f '{{.NetworkSettings.SandboxKey}}' client)
nsenter --net="\$KEY" dnsperf -s 127.0.0.11 -d "$WORK/names.txt" -c 8 -l 10 2>&1 | awk '/Queries per second/ {print \$4}' > "$WORK/cnet-qps.txt"
INNER
unshare --net --mount --pid --fork --kill-child --mount-proc --propagation private \
  sh -c "mount -t sysfs sysfs /sys && ip link set lo up && bash '$WORK/cnet.sh'"
CNET_QPS=$(cat "$WORK/cnet-qps.txt")

read -r dmed dp99 < <(stats "$WORK/docker-attach.txt")
read -r cmed cp99 < <(stats "$WORK/cnet-attach.txt")
mkdir -p bench/results
OUT="bench/results/$(date +%Y-%m-%d).md"
{
  echo "# cnet vs Docker $(dockerd --version | awk '{print $3}' | tr -d ,), $(nproc) cores, kernel $(uname -r), $(date -u +%Y-%m-%dT%H:%MZ)"
  echo
  echo "| benchmark | cnet | Docker | cnet/Docker |"
  echo "|---|---|---|---|"
  awk -v cm="$cmed" -v dm="$dmed" -v cp="$cp99" -v dp="$dp99" -v n="$N" 'BEGIN {
    printf "| attach, %d containers one at a time (API connect), median | %.2f ms | %.2f ms | %.1fx faster |\n", n, cm, dm, dm/cm
    printf "| attach, p99 | %.2f ms | %.2f ms | %.1fx faster |\n", cp, dp, dp/cp }'
  awk -v c="$CNET_QPS" -v d="$DOCKER_QPS" -v n="$N" 'BEGIN {
    printf "| embedded DNS, dnsperf -c 8, %d names | %.0f q/s | %.0f q/s | %.2fx |\n", n, c, d, c/d }'
} | tee "$OUT"
echo "written to $OUT"
