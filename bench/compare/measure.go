package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// parallel runs fn(0..n-1) with at most width at once and returns the first error. Setting up
// hundreds of containers is not what is measured, so it need not be done one at a time.
func parallel(n, width int, fn func(i int) error) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	sem := make(chan struct{}, width)
	for i := range n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := fn(i); err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return first
}

// apiClients keeps one HTTP client per API socket, so that every timed call after the first
// reuses its connection: what is measured is the daemon's work, not a connect(2).
var apiClients sync.Map

// apiConnect times POST /networks/{net}/connect (or /disconnect) of the Engine API, v1.41,
// which both Docker 20.10 and cnet speak, on the daemon's unix socket.
func apiConnect(sock, network, container string, connect bool) (time.Duration, error) {
	v, _ := apiClients.LoadOrStore(sock, &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		},
	}})
	verb := "connect"
	if !connect {
		verb = "disconnect"
	}
	body := strings.NewReader(fmt.Sprintf(`{"Container":%q}`, container))
	start := time.Now()
	resp, err := v.(*http.Client).Post("http://api/v1.41/networks/"+network+"/"+verb, "application/json", body)
	if err != nil {
		return 0, fmt.Errorf("API %s of %s: %w", verb, container, err)
	}
	var msg [512]byte
	n, _ := resp.Body.Read(msg[:])
	resp.Body.Close()
	took := time.Since(start)
	if resp.StatusCode/100 != 2 {
		return 0, fmt.Errorf("API %s of %s: %s: %s", verb, container, resp.Status, msg[:n])
	}
	return took, nil
}

// measurePublish runs ranged (a container publishing a port range) and reports its wall time
// and what it left behind: processes on the machine beyond those of plain (the same container
// without ports, run first: its shim and process are not the range's cost), the daemon's RSS
// growth (daemonPid 0: no daemon) and the firewall rules and elements added in the system's
// namespace.
func measurePublish(cmd func(string, ...string) *exec.Cmd, daemonPid int, plain, ranged func() (time.Duration, error)) (PublishResult, error) {
	r := PublishResult{DaemonMemKB: -1}
	started := func(run func() (time.Duration, error)) (time.Duration, int, error) {
		before, err := pids()
		if err != nil {
			return 0, 0, err
		}
		took, err := run()
		if err != nil {
			return 0, 0, err
		}
		time.Sleep(time.Second) // let anything started in the background show up
		after, err := pids()
		return took, newProcs(before, after), err
	}
	_, plainProcs, err := started(plain)
	if err != nil {
		return r, err
	}
	rules0, elems0, err := firewall(cmd)
	if err != nil {
		return r, err
	}
	var mem0 int
	if daemonPid != 0 {
		if mem0, err = rssKB(daemonPid); err != nil {
			return r, err
		}
	}
	var procs int
	if r.Wall, procs, err = started(ranged); err != nil {
		return r, err
	}
	r.Procs = procs - plainProcs
	if daemonPid != 0 {
		mem1, err := rssKB(daemonPid)
		if err != nil {
			return r, err
		}
		r.DaemonMemKB = mem1 - mem0
	}
	rules1, elems1, err := firewall(cmd)
	if err != nil {
		return r, err
	}
	r.Rules, r.Elements = rules1-rules0, elems1-elems0
	return r, nil
}

// inPid runs commands in the network namespace of a process of this PID namespace (a Docker or
// Podman container's).
func inPid(pid int) func(string, ...string) *exec.Cmd {
	return func(name string, args ...string) *exec.Cmd {
		return exec.Command("nsenter", append([]string{"-t", strconv.Itoa(pid), "-n", "--", name}, args...)...)
	}
}

var (
	reQPS  = regexp.MustCompile(`Queries per second:\s+([0-9.]+)`)
	reLost = regexp.MustCompile(`Queries lost:\s+([0-9]+)`)
	reAvg  = regexp.MustCompile(`Average Latency \(s\):\s+([0-9.]+)`)
)

// runDNSPerf queries server (the resolver of the client's resolv.conf) with dnsperf run in the
// client's namespace through cmd, asking for the A records of prefix0..prefix(n-1).
func runDNSPerf(env *Env, cmd func(string, ...string) *exec.Cmd, server, prefix string, n int, cfg DNSConfig) (DNSResult, error) {
	var r DNSResult
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "%s%d A\n", prefix, i)
	}
	file := filepath.Join(env.Work, "names-"+prefix+".txt")
	if err := os.WriteFile(file, []byte(b.String()), 0o644); err != nil {
		return r, err
	}
	// One query first, outside dnsperf: a resolver that does not know the names would
	// otherwise be measured answering NXDOMAIN.
	if out, err := runCmd(cmd("busybox", "nslookup", prefix+"0", server)); err != nil || !strings.Contains(out, "Address") {
		return r, fmt.Errorf("%s0 does not resolve through %s (%v): %s", prefix, server, err, out)
	}
	out, err := runCmd(cmd("dnsperf", "-s", server, "-d", file, "-c", strconv.Itoa(cfg.Clients), "-l", strconv.Itoa(cfg.Seconds)))
	if err != nil {
		return r, err
	}
	m := reQPS.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("dnsperf printed no rate: %s", out)
	}
	r.QPS, _ = strconv.ParseFloat(m[1], 64)
	if m := reLost.FindStringSubmatch(out); m != nil {
		r.Lost, _ = strconv.Atoi(m[1])
	}
	if m := reAvg.FindStringSubmatch(out); m != nil {
		s, _ := strconv.ParseFloat(m[1], 64)
		r.AvgLatency = time.Duration(s * float64(time.Second))
	}
	if !strings.Contains(out, "NOERROR") || strings.Contains(out, "NXDOMAIN") {
		return r, fmt.Errorf("dnsperf got failures, not answers: %s", out)
	}
	return r, nil
}

// iperfRounds is how many times each data path is measured, the paths taking turns: one
// iperf3 run on 2 cores swings by 15%, and a path measured while something else happened to
// run would decide a ratio on its own. The median of the rounds is reported.
const iperfRounds = 5

// cmdFunc makes a command that runs where one end of a path lives (the host's namespace, a
// container's).
type cmdFunc = func(string, ...string) *exec.Cmd

// path is one data path of benchmark 4: an iperf3 server where server runs (listening on
// 5201), a client where client runs connecting to target:port, the median written to into.
type path struct {
	what           string
	server, client cmdFunc
	target         string
	port           int
	into           *float64
}

// systemPaths are a system's paths of benchmark 4 with an iperf3 server in the container srv
// (listening on 5201, published on the host's 127.0.0.1:pubPort unless that is 0): from the
// host to the container's IP, from the container peer, and from the host through the
// published port.
func systemPaths(r *DataPathResult, srv, host, peer cmdFunc, srvIP string, pubPort int) []path {
	paths := []path{
		{"host to container", srv, host, srvIP, 5201, &r.Direct},
		{"container to container", srv, peer, srvIP, 5201, &r.CtrToCtr},
	}
	if pubPort != 0 {
		paths = append(paths, path{"published port", srv, host, "127.0.0.1", pubPort, &r.Published})
	}
	return paths
}

// dataPaths measures a system's paths (see systemPaths) and, in the same rounds, the paths in
// also (the baselines', when they are compared with this system): a ratio between two paths
// is then never a ratio between two moments of a noisy machine.
func dataPaths(srv, host, peer cmdFunc, srvIP string, pubPort, seconds int, also []path) (DataPathResult, error) {
	var r DataPathResult
	if err := measurePaths(append(systemPaths(&r, srv, host, peer, srvIP, pubPort), also...), seconds); err != nil {
		return r, err
	}
	if pubPort != 0 {
		r.ProxyProcs = countProxies(pubPort)
	}
	return r, nil
}

// measurePaths runs every path iperfRounds times, the paths taking turns, and writes each
// one's median. Each round starts one path further on, so that no path is always the one
// measured first (or right after another).
func measurePaths(paths []path, seconds int) error {
	samples := make([][]float64, len(paths))
	for round := range iperfRounds {
		for k := range paths {
			i := (round + k) % len(paths)
			p := paths[i]
			g, err := iperf(p.server, p.client, p.target, 5201, p.port, seconds)
			if err != nil {
				return fmt.Errorf("%s: %w", p.what, err)
			}
			samples[i] = append(samples[i], g)
		}
	}
	for i, p := range paths {
		slices.Sort(samples[i])
		*p.into = samples[i][len(samples[i])/2]
	}
	return nil
}

// countProxies counts the machine's processes that are userland proxies of a host port: their
// command line names the port and they are a proxy (docker-proxy, Podman's rootlessport).
func countProxies(port int) int {
	ps, _ := pids()
	n := 0
	for pid := range ps {
		cl, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			continue
		}
		args := strings.Split(strings.ToLower(string(cl)), "\x00")
		proxy := strings.Contains(args[0], "proxy") || strings.Contains(args[0], "rootlessport")
		if proxy && slices.Contains(args, strconv.Itoa(port)) {
			n++
		}
	}
	return n
}

// daemonOps are what the scale benchmark does to a system with a daemon.
type daemonOps struct {
	list  func() (string, error) // IDs of the running containers, one per line
	fill  func(more int) error   // start more containers
	pid   func() (int, error)    // the daemon's PID, for its RSS
	stop  func(pid int) error    // stop the daemon (its containers keep running) and wait
	start func() error           // start it and wait until it answers
}

// scaleDaemon brings the system to n running containers, reads the daemon's RSS, then times
// a stop and start of the daemon until it lists all n running again.
func scaleDaemon(n int, d daemonOps) (ScaleResult, error) {
	var r ScaleResult
	have, err := d.list()
	if err != nil {
		return r, err
	}
	if more := n - len(strings.Fields(have)); more > 0 {
		if err := d.fill(more); err != nil {
			return r, err
		}
	}
	pid, err := d.pid()
	if err != nil {
		return r, err
	}
	if r.DaemonRSSKB, err = rssKB(pid); err != nil {
		return r, err
	}
	if err := d.stop(pid); err != nil {
		return r, err
	}
	start := time.Now()
	if err := d.start(); err != nil {
		return r, err
	}
	if err := waitRunning(d.list, n); err != nil {
		return r, err
	}
	r.Restart = time.Since(start)
	return r, nil
}

// waitRunning polls list (IDs of running containers, one per line) until it has n of them.
func waitRunning(list func() (string, error), n int) error {
	deadline := time.Now().Add(5 * time.Minute)
	for {
		out, err := list()
		if err == nil && len(strings.Fields(out)) >= n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not all %d containers listed as running after 5 min (%v)", n, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitGone waits for a process to exit.
func waitGone(pid int, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			return true
		}
		if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil && strings.Contains(string(st), ") Z ") {
			return true // a zombie: exited, its parent not yet told
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

// killUnder kills every process whose command line names a path under dir: what a system
// started from its private directories (containerd, shims, proxies) and left running.
func killUnder(dir string) {
	for range 3 {
		ps, _ := pids()
		found := false
		for pid := range ps {
			if pid == os.Getpid() {
				continue
			}
			cl, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			if err == nil && strings.Contains(string(cl), dir) {
				_ = syscall.Kill(pid, syscall.SIGKILL)
				found = true
			}
		}
		if !found {
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// unmountUnder lazily unmounts every mount point under dir, deepest first.
func unmountUnder(dir string) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var points []string
	for line := range strings.SplitSeq(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			points = append(points, f[4])
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(points)))
	for _, p := range slices.Compact(points) {
		_ = syscall.Unmount(p, syscall.MNT_DETACH)
	}
}

// inCgroup tells whether a process is in the cgroup /parent or under it, in any hierarchy.
func inCgroup(pid int, parent string) bool {
	cg, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	for line := range strings.SplitSeq(string(cg), "\n") {
		_, path, _ := strings.Cut(line[strings.IndexByte(line, ':')+1:], ":")
		if path == "/"+parent || strings.HasPrefix(path, "/"+parent+"/") {
			return true
		}
	}
	return false
}

// killCgroup kills every process in the cgroup /parent or under it (containers whose daemon
// is gone: killing them one by one through its CLI takes minutes for a thousand).
func killCgroup(parent string) error {
	for range 50 {
		all, err := pids()
		if err != nil {
			return err
		}
		left := 0
		for pid := range all {
			if inCgroup(pid, parent) && syscall.Kill(pid, syscall.SIGKILL) == nil {
				left++
			}
		}
		if left == 0 {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("processes in cgroup /%s still alive after 5 s of SIGKILL", parent)
}

// removeCgroups removes the cgroup /parent and those under it, in every hierarchy (v1) or the
// unified one (v2), deepest first.
func removeCgroups(parent string) error {
	cgs, _ := filepath.Glob("/sys/fs/cgroup/*/" + parent)
	if st, err := os.Stat("/sys/fs/cgroup/" + parent); err == nil && st.IsDir() {
		cgs = append(cgs, "/sys/fs/cgroup/"+parent)
	}
	var errs []error
	for _, cg := range cgs {
		var dirs []string
		_ = filepath.WalkDir(cg, func(path string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, path)
			}
			return nil
		})
		for _, d := range slices.Backward(dirs) {
			if err := os.Remove(d); err != nil && !os.IsNotExist(err) {
				errs = append(errs, fmt.Errorf("removing cgroup %s (processes still in it?): %w", d, err))
			}
		}
	}
	return errors.Join(errs...)
}
