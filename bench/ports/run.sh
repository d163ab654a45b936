#!/bin/sh
# Port-publishing benchmarks, each in throwaway namespaces (root):
#   - a 1000-port range on one container: the daemon's work, extra processes, daemon memory;
#   - one more published port with 1k and 10k present (the nftables side): constant time;
#   - iperf3 host → container directly, → 127.0.0.1:published port (kernel NAT) and through the
#     in-daemon userland proxy, side by side (needs iperf3: apt-get install iperf3).
#
#   sudo bench/ports/run.sh
set -eu
cd "$(dirname "$0")/../.."
go test -count=1 -run XXX -bench 'BenchmarkPublishRange' -benchtime 5x ./integration/
go test -count=1 -run XXX -bench 'BenchmarkAddPort|BenchmarkAddPorts1000' -benchmem ./internal/firewall/
go test -count=1 -run XXX -bench 'BenchmarkThroughput' -benchtime 2x ./integration/
