#!/bin/bash
# cnet side by side with Docker, Podman and the CNI reference plugins, in one run, on this
# machine (issue 7). Installs what it needs from Debian (and cnitool from the Go module of
# containernetworking/cni), builds cnet, then runs the Go driver in this directory, which
# starts each system in a throwaway namespace of its own, measures, and removes everything it
# started. Prints a markdown table; writes it with an SVG chart to bench/results/<date>.{md,svg}.
#
#   sudo bench/compare/run.sh                                  # everything (~15 min on 2 cores)
#   sudo bench/compare/run.sh -systems cnet,Docker -sizes 1,100  # a part; see -help
set -euo pipefail
cd "$(dirname "$0")/../.."
[ "$(id -u)" = 0 ] || { echo "bench/compare needs root (namespaces, dockerd, podman)" >&2; exit 1; }
export DEBIAN_FRONTEND=noninteractive
need=()
for c in dockerd:docker.io containerd:containerd runc:runc podman:podman /usr/lib/podman/netavark:netavark \
  /usr/lib/podman/aardvark-dns:aardvark-dns /usr/lib/cni/bridge:containernetworking-plugins dnsperf:dnsperf \
  iperf3:iperf3 busybox:busybox-static nft:nftables iptables:iptables nsenter:util-linux ip:iproute2; do
  command -v "${c%%:*}" >/dev/null || [ -x "${c%%:*}" ] || need+=("${c##*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]}" >&2
  apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
fi
BIN=$(mktemp -d /tmp/cnet-compare-bin-XXXXXX)
trap 'rm -rf "$BIN"' EXIT
GOBIN="$BIN" go install github.com/containernetworking/cni/cnitool@v1.1.2
go build -o "$BIN/cnet" ./cmd/cnet
go build -o "$BIN/compare" ./bench/compare
"$BIN/compare" -cnet "$BIN/cnet" -cnitool "$BIN/cnitool" "$@"
