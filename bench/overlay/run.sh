#!/bin/sh
# Overlay benchmarks, each on a cluster of throwaway host namespaces joined by a router, with a
# three-member etcd (root; needs Debian's etcd-server, iperf3 and busybox-static; docker.io for
# Docker's swarm side by side, measured only where dockerd is installed):
#   - iperf3 container → container across two hosts over a cnet overlay, against a hand-made
#     VXLAN pair between the same two host namespaces and Docker 20.10's swarm overlay;
#   - a new container's name resolving on another host (100 containers; p50/p99/max), and a
#     dead host's endpoint leaving the others' FDB (5 s TTL);
#   - network connect to an overlay network against a bridge network on the same host.
# Each takes under two minutes on 2 cores; they run one after another.
#
#   sudo bench/overlay/run.sh
set -eu
cd "$(dirname "$0")/../.."
go test -count=1 -run XXX -bench BenchmarkOverlay -benchtime 1x -timeout 20m ./integration/
