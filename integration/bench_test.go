package integration

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/cnet-dev/cnet/internal/api"
	"github.com/cnet-dev/cnet/internal/testenv"
)

// BenchmarkAttach measures what the issue calls an attach: the connect API call, from request
// to the container's new veth being up with its address (the call returns only then). Each
// iteration connects one running container and, untimed, disconnects it again, so the network
// stays the same size.
func BenchmarkAttach(b *testing.B) { benchConnectCycle(b, true) }

// BenchmarkDetach is BenchmarkAttach the other way: each iteration times the disconnect of a
// running container from a user network (its interface out of service, its name no longer
// resolving) and, untimed, connects it again.
func BenchmarkDetach(b *testing.B) { benchConnectCycle(b, false) }

// benchConnectCycle connects and disconnects one running container, timing the connect or the
// disconnect.
func benchConnectCycle(b *testing.B, timeConnect bool) {
	h := testenv.NewHost(b)
	h.MustCLI("network", "create", "bench")
	h.MustCLI("run", "--rootfs", "/", "-d", "--name", "c", "busybox", "sleep", "3600")
	cl := h.API()
	ctx := context.Background()
	connect := func() error { return cl.NetworkConnect(ctx, "bench", api.NetworkConnectRequest{Container: "c"}) }
	disconnect := func() error { return cl.NetworkDisconnect(ctx, "bench", api.NetworkDisconnectRequest{Container: "c"}) }
	timed, untimed := connect, disconnect
	if !timeConnect {
		timed, untimed = disconnect, connect
		if err := connect(); err != nil {
			b.Fatal(err)
		}
	}
	var lat []time.Duration
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		if err := timed(); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
		b.StopTimer()
		if err := untimed(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	reportLatency(b, lat)
}

// BenchmarkAttachScaling connects 500 running containers to one network one at a time and
// reports the median and p99 of the attaches and the mean of the 1st-10th and 491st-500th, to
// show that the attach cost does not grow with the number of endpoints on the network.
func BenchmarkAttachScaling(b *testing.B) {
	const n = 500
	h := testenv.NewHost(b)
	h.MustCLI("network", "create", "bench")
	cl := h.API()
	ctx := context.Background()
	for i := range n {
		req := api.ContainerCreateRequest{ContainerConfig: api.ContainerConfig{Cmd: []string{"busybox", "sleep", "3600"}}}
		resp, err := cl.ContainerCreate(ctx, fmt.Sprintf("c%d", i), req)
		if err != nil {
			b.Fatal(err)
		}
		if err := cl.ContainerStart(ctx, resp.ID); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for b.Loop() {
		var lat []time.Duration
		for i := range n {
			start := time.Now()
			if err := cl.NetworkConnect(ctx, "bench", api.NetworkConnectRequest{Container: fmt.Sprintf("c%d", i)}); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(start))
		}
		b.ReportMetric(ms(mean(lat[:10])), "first10-ms")
		b.ReportMetric(ms(mean(lat[n-10:])), "last10-ms")
		reportLatency(b, lat)
		b.StopTimer()
		for i := range n {
			if err := cl.NetworkDisconnect(ctx, "bench", api.NetworkDisconnectRequest{Container: fmt.Sprintf("c%d", i)}); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
	}
}

func reportLatency(b *testing.B, lat []time.Duration) {
	s := slices.Clone(lat)
	slices.Sort(s)
	b.ReportMetric(ms(s[len(s)/2]), "median-ms")
	b.ReportMetric(ms(s[len(s)*99/100]), "p99-ms")
}

func mean(d []time.Duration) time.Duration {
	var sum time.Duration
	for _, x := range d {
		sum += x
	}
	return sum / time.Duration(len(d))
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
