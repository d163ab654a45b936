package integration

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cnet-dev/cnet/internal/api"
	"github.com/cnet-dev/cnet/internal/testenv"
)

// BenchmarkPublishRange publishes a 1000-port range on one container, the figure Docker 20.10
// takes 33 s and 2000 docker-proxy processes for. It reports the daemon's work for the ports
// (the start call with the range minus the same start without ports), the processes started
// beyond those of a container without ports, and the daemon's memory growth.
func BenchmarkPublishRange(b *testing.B) {
	h := testenv.NewHost(b)
	cl := h.API()
	ctx := context.Background()
	start := func(name string, bindings map[string][]api.PortBinding) time.Duration {
		req := api.ContainerCreateRequest{ContainerConfig: api.ContainerConfig{Cmd: []string{"busybox", "sleep", "3600"}},
			HostConfig: &api.HostConfig{PortBindings: bindings}}
		resp, err := cl.ContainerCreate(ctx, name, req)
		if err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		if err := cl.ContainerStart(ctx, resp.ID); err != nil {
			b.Fatal(err)
		}
		return time.Since(t0)
	}
	rangeBindings := map[string][]api.PortBinding{}
	for p := 20000; p < 21000; p++ {
		rangeBindings[fmt.Sprintf("%d/tcp", p)] = []api.PortBinding{{HostPort: strconv.Itoa(p)}}
	}
	start("warmup", nil)
	var withPorts, without time.Duration
	var extraProcs, rssKB int
	for i := 0; b.Loop(); i++ {
		procs0 := countProcs(b, h)
		without += start(fmt.Sprintf("plain%d", i), nil)
		procsPlain := countProcs(b, h) - procs0
		rss0 := rssKiB(h.DaemonPid())
		withPorts += start(fmt.Sprintf("ranged%d", i), rangeBindings)
		rssKB = rssKiB(h.DaemonPid()) - rss0
		extraProcs = countProcs(b, h) - procs0 - 2*procsPlain
		b.StopTimer()
		h.MustCLI("rm", "-f", fmt.Sprintf("ranged%d", i), fmt.Sprintf("plain%d", i))
		b.StartTimer()
	}
	n := float64(b.N)
	b.ReportMetric(ms(withPorts)/n, "start-1000ports-ms")
	b.ReportMetric(ms(without)/n, "start-noports-ms")
	b.ReportMetric(float64(extraProcs), "extra-procs")
	b.ReportMetric(float64(rssKB)/1024, "daemon-rss-delta-MB")
}

// countProcs counts the processes of the host's PID namespace.
func countProcs(b *testing.B, h *testenv.Host) int {
	entries, err := os.ReadDir(h.Path("/proc"))
	if err != nil {
		b.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err == nil {
			n++
		}
	}
	return n
}

// rssKiB reads a process's resident memory.
func rssKiB(pid int) int {
	data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			v, _ := strconv.Atoi(f[1])
			return v
		}
	}
	return 0
}
