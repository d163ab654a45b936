#!/bin/sh
# Resource bounds (root, in a throwaway host namespace): N containers (default 1000) on one
# network with 10 published ports each; prints the daemon's RSS and its restart-and-reconcile
# time after a SIGKILL. Goals: < 200 MB, < 2 s.
#
#   sudo bench/scale/run.sh          # 1000 containers, 10,000 ports
#   sudo N=200 bench/scale/run.sh
set -eu
cd "$(dirname "$0")/../.."
CNET_SCALE_N="${N:-1000}" go test -count=1 -run XXX -bench BenchmarkScale -benchtime 1x -timeout 30m ./integration/
