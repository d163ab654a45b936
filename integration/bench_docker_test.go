package integration

import (
	"strings"
	"testing"
	"time"

	"github.com/cnet-dev/cnet/internal/dockerplugin"
	"github.com/cnet-dev/cnet/internal/testenv"
)

// BenchmarkDockerConnect times `docker network connect` of a running Docker container, as a
// Docker user types it, to a cnet network (through cnet's plugin: IPAM reservation, endpoint,
// hand-off veth, dockerd moving it in) against Docker's own bridge driver, alternating in one
// loop on one dockerd. Each iteration times the connect and, untimed, disconnects again. The
// ratio is cnet's median over the bridge driver's (below 1: cnet's is faster).
func BenchmarkDockerConnect(b *testing.B) {
	h := testenv.NewHost(b)
	dk := newDockerd(b, h)
	h.StopDaemon()
	h.WaitDaemonGone()
	h.SetDaemonArgs(append(h.DaemonArgs(), "--docker-plugin="+dockerplugin.SocketPath)...)
	h.StartDaemon()
	dk.loadBusybox()
	dk.mustRun("network", "create", "-d", "cnet", "--ipam-driver", "cnet", "cnetnet")
	dk.mustRun("network", "create", "-d", "bridge", "dockernet")
	// Each container starts on a network of its own kind and is connected to a second one.
	dk.mustRun("network", "create", "-d", "cnet", "--ipam-driver", "cnet", "cnethome")
	dk.mustRun("network", "create", "-d", "bridge", "dockerhome")
	for _, c := range [][2]string{{"ccnet", "cnethome"}, {"cdocker", "dockerhome"}} {
		dk.mustRun("run", "-d", "--name", c[0], "--network", c[1], "--stop-timeout", "1", dockerBusybox, "busybox", "sleep", "3600")
	}
	b.Cleanup(func() {
		dk.run("rm", "-f", "ccnet", "cdocker")
		dk.run("network", "rm", "cnetnet", "dockernet", "cnethome", "dockerhome")
	})
	connect := func(network, container string) time.Duration {
		start := time.Now()
		dk.mustRun("network", "connect", network, container)
		d := time.Since(start)
		dk.mustRun("network", "disconnect", network, container)
		return d
	}
	var cnet, docker []time.Duration
	for b.Loop() {
		cnet = append(cnet, connect("cnetnet", "ccnet"))
		docker = append(docker, connect("dockernet", "cdocker"))
	}
	b.ReportMetric(ms(medianDur(cnet)), "cnet-ms")
	b.ReportMetric(ms(medianDur(docker)), "bridge-ms")
	b.ReportMetric(float64(medianDur(cnet))/float64(medianDur(docker)), "ratio")
	if out := dk.mustRun("ps", "--format", "{{.Names}}"); !strings.Contains(out, "ccnet") {
		b.Errorf("the cnet container stopped during the benchmark: %s", out)
	}
}
