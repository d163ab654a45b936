package integration

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/cnet-dev/cnet/internal/api"
	"github.com/cnet-dev/cnet/internal/testenv"
)

// BenchmarkScale runs CNET_SCALE_N containers (default 1000) on one network with 10 published
// ports each (10,000 ports), then reports the daemon's resident memory and how long a killed
// daemon takes to restart and reconcile (until it answers again, every container restored).
// Goals: under 200 MB and under 2 s.
func BenchmarkScale(b *testing.B) {
	n := 1000
	if v, err := strconv.Atoi(os.Getenv("CNET_SCALE_N")); err == nil && v > 0 {
		n = v
	}
	h := testenv.NewHost(b)
	h.MustCLI("network", "create", "--subnet", "10.128.0.0/16", "scale")
	cl := h.API()
	ctx := context.Background()
	for i := range n {
		bindings := map[string][]api.PortBinding{}
		for p := range 10 {
			bindings[fmt.Sprintf("%d/tcp", 1000+p)] = []api.PortBinding{{HostPort: strconv.Itoa(20000 + i*10 + p)}}
		}
		resp, err := cl.ContainerCreate(ctx, fmt.Sprintf("s%d", i), api.ContainerCreateRequest{
			ContainerConfig: api.ContainerConfig{Cmd: []string{"busybox", "sleep", "3600"}},
			HostConfig:      &api.HostConfig{NetworkMode: "scale", PortBindings: bindings}})
		if err != nil {
			b.Fatal(err)
		}
		if err := cl.ContainerStart(ctx, resp.ID); err != nil {
			b.Fatal(err)
		}
	}
	var restart time.Duration
	for b.Loop() {
		h.KillDaemon()
		t0 := time.Now()
		h.StartDaemon()
		restart = time.Since(t0)
	}
	b.ReportMetric(float64(rssKiB(h.DaemonPid()))/1024, "daemon-rss-MB")
	b.ReportMetric(restart.Seconds(), "restart-s")
	b.ReportMetric(float64(n), "containers")
	b.ReportMetric(float64(10*n), "published-ports")
}
