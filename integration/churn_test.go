package integration

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/cnet-dev/cnet/internal/api"
	"github.com/cnet-dev/cnet/internal/testenv"
)

// TestChurn is a randomized soak: workers run, connect, disconnect, publish, stop and remove
// containers across several networks in parallel, through the API. Every refusal must be a
// 4xx (never a 5xx); at the end, and after a daemon crash in the middle, the invariants of
// TestCrashAnywhere hold. Bounded by CNET_SOAK_SECONDS (default 6, CI's short mode), seeded by
// CNET_SOAK_SEED (default: the time; the seed is printed so a failure can be replayed).
func TestChurn(t *testing.T) {
	seconds := 6
	if s, err := strconv.Atoi(os.Getenv("CNET_SOAK_SECONDS")); err == nil && s > 0 {
		seconds = s
	}
	seed := time.Now().UnixNano()
	if s, err := strconv.ParseInt(os.Getenv("CNET_SOAK_SEED"), 10, 64); err == nil {
		seed = s
	}
	t.Logf("churn seed %d (CNET_SOAK_SEED=%d to replay), %d s", seed, seed, seconds)

	h := testenv.NewHost(t)
	nets := []string{"bridge", "crashnet", "n2", "n3"}
	for _, n := range nets[1:] {
		h.MustCLI("network", "create", n)
	}
	runSleeper(t, h, "survivor", "--net", "crashnet", "-p", "9090:80")
	cl := h.API()
	ctx := context.Background()

	var mu sync.Mutex
	var names []string
	serverErrors := 0
	check := func(op string, err error) {
		var se *api.StatusError
		if errors.As(err, &se) && se.Status >= 500 {
			mu.Lock()
			serverErrors++
			mu.Unlock()
			t.Errorf("%s: %d %s", op, se.Status, se.Message)
		}
	}
	pick := func(r *rand.Rand) string {
		mu.Lock()
		defer mu.Unlock()
		if len(names) == 0 {
			return "survivor"
		}
		return names[r.Intn(len(names))]
	}
	deadline := time.Now().Add(time.Duration(seconds) * time.Second)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewSource(seed + int64(w)))
			for i := 0; time.Now().Before(deadline); i++ {
				switch op := r.Intn(6); op {
				case 0, 1:
					name := fmt.Sprintf("w%d-%d", w, i)
					hc := &api.HostConfig{NetworkMode: nets[r.Intn(len(nets))]}
					if r.Intn(2) == 0 {
						hc.PortBindings = map[string][]api.PortBinding{"80/tcp": {{}}}
					}
					resp, err := cl.ContainerCreate(ctx, name, api.ContainerCreateRequest{
						ContainerConfig: api.ContainerConfig{Cmd: []string{"busybox", "sleep", "3600"}}, HostConfig: hc})
					check("create", err)
					if err == nil {
						check("start", cl.ContainerStart(ctx, resp.ID))
						mu.Lock()
						names = append(names, name)
						mu.Unlock()
					}
				case 2:
					check("connect", cl.NetworkConnect(ctx, nets[r.Intn(len(nets))], api.NetworkConnectRequest{Container: pick(r)}))
				case 3:
					// survivor keeps crashnet: the end check pings the host from it, and a
					// container disconnected from every network has no way out (as in Docker).
					if n, net := pick(r), nets[r.Intn(len(nets))]; n != "survivor" || net != "crashnet" {
						check("disconnect", cl.NetworkDisconnect(ctx, net, api.NetworkDisconnectRequest{Container: n}))
					}
				case 4:
					if n := pick(r); n != "survivor" {
						zero := 0
						check("stop", cl.ContainerStop(ctx, n, &zero))
					}
				case 5:
					if n := pick(r); n != "survivor" {
						check("rm", cl.ContainerRemove(ctx, n, true))
					}
				}
			}
		}()
	}
	// A crash in the middle of it all.
	time.Sleep(time.Duration(seconds) * time.Second / 2)
	h.KillDaemon()
	h.StartDaemon()
	wg.Wait()
	if serverErrors > 0 {
		t.Fatalf("%d server errors (seed %d)", serverErrors, seed)
	}
	checkChurnInvariants(t, h)
}

func checkChurnInvariants(t *testing.T, h *testenv.Host) {
	t.Helper()
	checkState(t, h)
	execPing(t, h, "survivor", "172.17.0.1")
}
