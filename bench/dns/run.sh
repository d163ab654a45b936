#!/bin/sh
# Measures cnet's embedded DNS resolver with dnsperf, the way Docker's was measured: dnsperf runs
# inside a throwaway sandbox namespace and queries 127.0.0.11:53 (through the nftables redirection),
# names of the sandbox's network (100 endpoints). Prints queries/second, lost queries and
# latency percentiles (measured at half the maximum rate).
#
# Needs root, Go and dnsperf (apt-get install dnsperf). Nothing outside the namespace it makes.
#
#   sudo bench/dns/run.sh              # 10 s, 8 clients (dnsperf -c 8)
#   sudo SECONDS_=30 CLIENTS=16 bench/dns/run.sh
set -eu
cd "$(dirname "$0")/../.."
command -v dnsperf >/dev/null || { echo "dnsperf is missing: apt-get install dnsperf" >&2; exit 1; }
CNET_DNSPERF=1 CNET_DNSPERF_SECONDS="${SECONDS_:-10}" CNET_DNSPERF_CLIENTS="${CLIENTS:-8}" \
	go test -count=1 -run '^TestDNSPerf$' -v ./internal/dns/
