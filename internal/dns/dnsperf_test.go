package dns

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestDNSPerf measures the resolver with dnsperf (Debian's dnsperf package), run inside a
// throwaway sandbox against 127.0.0.11:53 (through the nftables redirection), names on the sandbox's
// network of 100 endpoints. Opt-in: CNET_DNSPERF=1 (bench/dns/run.sh sets it); CNET_DNSPERF_SECONDS
// and CNET_DNSPERF_CLIENTS override the 10 s and 8 clients.
//
// A first run at full speed gives queries/second and lost queries; a second one with -v at
// half that rate gives latency percentiles (at saturation latency only measures dnsperf's
// queue of outstanding queries).
func TestDNSPerf(t *testing.T) {
	if os.Getenv("CNET_DNSPERF") == "" {
		t.Skip("set CNET_DNSPERF=1 to run dnsperf (bench/dns/run.sh)")
	}
	if _, err := exec.LookPath("dnsperf"); err != nil {
		t.Skip("dnsperf not installed (apt-get install dnsperf)")
	}
	seconds := envInt("CNET_DNSPERF_SECONDS", 10)
	clients := envInt("CNET_DNSPERF_CLIENTS", 8)
	ns := newNS(t)
	r := NewResolver(benchTable(), nil, Config{Networks: []string{"bench"}})
	l, err := Serve(ns, r)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()

	var queries strings.Builder
	for i := range 100 {
		fmt.Fprintf(&queries, "container%d A\n", i)
	}
	fmt.Fprintf(&queries, "web A\ncontainer7.bench A\n44.0.18.172.in-addr.arpa PTR\n")
	file := filepath.Join(t.TempDir(), "queries")
	if err := os.WriteFile(file, []byte(queries.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	var perfCPU time.Duration // CPU time of the last dnsperf run
	dnsperf := func(extra ...string) string {
		args := append([]string{"--net=" + ns, "dnsperf", "-s", "127.0.0.11", "-d", file,
			"-c", strconv.Itoa(clients), "-l", strconv.Itoa(seconds)}, extra...)
		cmd := exec.Command("nsenter", args...)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("dnsperf %v: %v\n%s", args, err, out)
		}
		perfCPU = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
		return string(out)
	}

	cpu0 := processCPU(t)
	out := dnsperf()
	ownCPU := processCPU(t) - cpu0
	summary := out[strings.Index(out, "Statistics:"):]
	t.Logf("dnsperf -c %d -l %d, 127.0.0.11 in a sandbox:\n%s", clients, seconds, summary)
	qps := parseFloat(t, summary, `Queries per second:\s+([0-9.]+)`)
	lost := parseFloat(t, summary, `Queries lost:\s+([0-9]+)`)
	sent := parseFloat(t, summary, `Queries sent:\s+([0-9]+)`)
	t.Logf("CPU per query: resolver (this process) %v, dnsperf %v",
		ownCPU/time.Duration(sent), perfCPU/time.Duration(sent))
	if lost != 0 {
		t.Errorf("%v queries lost", lost)
	}

	out = dnsperf("-v", "-Q", strconv.Itoa(int(qps/2)))
	var lat []float64
	for line := range strings.SplitSeq(out, "\n") {
		// > NOERROR container42 A 0.000081
		if f := strings.Fields(line); len(f) >= 5 && f[0] == ">" {
			if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
				lat = append(lat, v)
			}
		}
	}
	if len(lat) == 0 {
		t.Fatalf("no latencies in dnsperf -v output:\n%.2000s", out)
	}
	slices.Sort(lat)
	pct := func(p float64) time.Duration {
		return time.Duration(lat[min(len(lat)-1, int(p*float64(len(lat))))] * float64(time.Second))
	}
	t.Logf("at %d queries/s (half the maximum), %d queries: latency p50 %v p90 %v p99 %v p99.9 %v max %v",
		int(qps/2), len(lat), pct(0.50), pct(0.90), pct(0.99), pct(0.999), pct(1))
	t.Logf("RESULT qps=%.0f lost=%.0f p50=%v p99=%v resolver-cpu/query=%v dnsperf-cpu/query=%v",
		qps, lost, pct(0.50), pct(0.99), ownCPU/time.Duration(sent), perfCPU/time.Duration(sent))
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func parseFloat(t *testing.T, s, re string) float64 {
	t.Helper()
	m := regexp.MustCompile(re).FindStringSubmatch(s)
	if m == nil {
		t.Fatalf("%q not in dnsperf output:\n%s", re, s)
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

// processCPU is the CPU time (user and system) this process has used.
func processCPU(t *testing.T) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
