// Command compare measures cnet side by side with Docker, Podman and the CNI reference plugins
// on this machine, in one run, and writes the table and a chart of the ratios to bench/results
// (issue 7). bench/compare/run.sh installs what it needs and runs it as root:
//
//	sudo bench/compare/run.sh
//
// Each system runs in a throwaway namespace of its own, one system at a time, so that none
// competes with another for the machine's cores; every benchmark is the same for each of them.
package main

import (
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type config struct {
	sizes        []int // attach benchmark sizes; the largest is how many containers are made
	dns          DNSConfig
	dnsNames     int
	iperfSeconds int
	scale        int
	ports        int
	systems      []string
	out          string
}

func main() {
	log.SetFlags(log.Ltime)
	var cfg config
	var sizes, systems string
	env := &Env{}
	flag.StringVar(&sizes, "sizes", "1,100,500", "attach benchmark: numbers of containers (the largest is made)")
	flag.IntVar(&cfg.dnsNames, "dns-names", 100, "embedded DNS: containers whose names are queried")
	flag.IntVar(&cfg.dns.Seconds, "dns-seconds", 5, "embedded DNS: dnsperf -l")
	flag.IntVar(&cfg.dns.Clients, "dns-clients", 8, "embedded DNS: dnsperf -c")
	flag.IntVar(&cfg.iperfSeconds, "iperf-seconds", 2, "data path: seconds per iperf3 run (each path is run 5 times)")
	flag.IntVar(&cfg.scale, "scale", 1000, "scale: containers running for the daemon's memory and restart")
	flag.IntVar(&cfg.ports, "ports", 1000, "port publishing: size of the range")
	flag.StringVar(&systems, "systems", "cnet,Docker,Podman,CNI,baseline", "systems to measure")
	flag.StringVar(&cfg.out, "out", "bench/results", "directory for <date>.md and <date>.svg")
	flag.StringVar(&env.Cnet, "cnet", "", "the cnet binary (required)")
	flag.StringVar(&env.CNITool, "cnitool", "", "cnitool (required for CNI)")
	flag.StringVar(&env.CNIPath, "cni-path", "/usr/lib/cni", "the CNI reference plugins")
	replotFile := flag.String("replot", "", "only draw FILE.svg again from FILE.json of an earlier run")
	flag.Parse()
	if *replotFile != "" {
		if err := replot(*replotFile); err != nil {
			log.Fatal(err)
		}
		return
	}
	for f := range strings.SplitSeq(sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			log.Fatalf("-sizes: %q is not a positive number", f)
		}
		cfg.sizes = append(cfg.sizes, n)
	}
	slices.Sort(cfg.sizes)
	cfg.systems = strings.Split(systems, ",")
	if env.Cnet == "" {
		log.Fatal("-cnet: the cnet binary is required (run.sh builds it)")
	}
	if err := compare(env, cfg); err != nil {
		log.Fatal(err)
	}
}

func compare(env *Env, cfg config) error {
	var err error
	if env.Work, err = os.MkdirTemp("", "cnet-compare-"); err != nil {
		return err
	}
	defer os.RemoveAll(env.Work)
	if err := makeImage(env); err != nil {
		return err
	}
	all := map[string]system{"cnet": newCnet(), "Docker": newDocker(), "Podman": newPodman(), "CNI": newCNI()}
	// A ^C or a kill stops whatever is running before the process goes.
	var current system
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		log.Print("interrupted: cleaning up")
		if current != nil {
			_ = current.Stop()
		}
		os.RemoveAll(env.Work)
		os.Exit(1)
	}()
	res := &results{}
	began := time.Now()
	for _, name := range cfg.systems {
		if name == "baseline" {
			if slices.Contains(cfg.systems, "cnet") {
				continue // measured in the same rounds as cnet's paths
			}
			logf("== baselines: hand-made veth+bridge, without and with conntrack")
			record, err := withBaselines(res, func(also []path) error { return measurePaths(also, cfg.iperfSeconds) })
			if err != nil {
				return err
			}
			record()
			continue
		}
		s, ok := all[name]
		if !ok {
			return fmt.Errorf("-systems: unknown system %q", name)
		}
		current = s
		t0 := time.Now()
		logf("== %s", name)
		err := measure(s, env, cfg, res)
		if stopErr := s.Stop(); err == nil && stopErr != nil {
			err = fmt.Errorf("stopping %s: %w", name, stopErr)
		}
		current = nil
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		logf("== %s done in %v", name, time.Since(t0).Round(time.Second))
	}
	logf("all measured in %v", time.Since(began).Round(time.Second))
	return res.write(cfg, env)
}

// withBaselines makes the two baselines (bare, and with conntrack), has measure measure their
// paths and removes the baselines. record is called with the baselines' results after measure
// succeeded, so that a system measured by measure can record its own before.
func withBaselines(res *results, measure func(also []path) error) (record func(), err error) {
	var rs [2]DataPathResult
	var also []path
	for i, nat := range []bool{false, true} {
		b, berr := newBaseline(i, nat)
		if berr != nil {
			return nil, fmt.Errorf("%s: %w", baselineName(nat), berr)
		}
		defer func() { err = errors.Join(err, b.Close()) }()
		also = append(also, b.paths(&rs[i])...)
	}
	if err := measure(also); err != nil {
		return nil, fmt.Errorf("data path with the baselines: %w", err)
	}
	return func() {
		for i, nat := range []bool{false, true} {
			res.dataPath(baselineName(nat), rs[i])
		}
	}, nil
}

func baselineName(withNAT bool) string {
	if withNAT {
		return "baseline+conntrack"
	}
	return "baseline"
}

// makeImage builds the busybox root filesystem and its tarball that Docker and Podman import
// (no registry is reachable): a static busybox, called as /bin/busybox.
func makeImage(env *Env) error {
	env.Rootfs = filepath.Join(env.Work, "rootfs")
	if err := os.MkdirAll(filepath.Join(env.Rootfs, "bin"), 0o755); err != nil {
		return err
	}
	bb, err := run("sh", "-c", "command -v busybox")
	if err != nil {
		return fmt.Errorf("busybox is missing (apt-get install busybox-static): %w", err)
	}
	if _, err := run("cp", strings.TrimSpace(bb), filepath.Join(env.Rootfs, "bin", "busybox")); err != nil {
		return err
	}
	env.Image = filepath.Join(env.Work, "busybox.tar")
	_, err = run("tar", "-C", env.Rootfs, "-cf", env.Image, ".")
	return err
}

// measure runs every benchmark s supports, in an order that reuses containers: the attach
// benchmark's containers count towards the scale benchmark's.
func measure(s system, env *Env, cfg config, res *results) error {
	if err := s.Start(env); err != nil {
		return err
	}
	name := s.Name()
	// The data path first, on a system with nothing else in it yet: after hundreds of
	// containers came and went, iperf3's ratios were seen to drift (cnet's published port
	// 84-87% of direct in full runs against 92-100% measured alone), and every system should
	// be measured in the same state.
	if d, ok := s.(dataPather); ok {
		logf("data path: iperf3, %d s each, %d rounds", cfg.iperfSeconds, iperfRounds)
		var dr DataPathResult
		var err error
		record := func() {}
		if name == "cnet" && slices.Contains(cfg.systems, "baseline") {
			// The baselines are measured in the same rounds as cnet's paths: the goal is a
			// ratio between them, and this VM's throughput drifts between minutes.
			record, err = withBaselines(res, func(also []path) (err error) { dr, err = d.DataPath(cfg.iperfSeconds, also); return err })
		} else {
			dr, err = d.DataPath(cfg.iperfSeconds, nil)
		}
		if err != nil {
			return fmt.Errorf("data path: %w", err)
		}
		res.dataPath(name, dr)
		record()
	}
	if a, ok := s.(attacher); ok {
		logf("attach: %d containers", cfg.sizes[len(cfg.sizes)-1])
		if err := benchAttach(a, name, cfg.sizes, res); err != nil {
			return fmt.Errorf("attach: %w", err)
		}
	}
	if r, ok := s.(resolver); ok {
		logf("embedded DNS: %d names, dnsperf -c %d -l %d", cfg.dnsNames, cfg.dns.Clients, cfg.dns.Seconds)
		d, err := r.DNS(cfg.dnsNames, cfg.dns)
		if err != nil {
			return fmt.Errorf("embedded DNS: %w", err)
		}
		res.dns(name, d)
	}
	if p, ok := s.(publisher); ok {
		logf("port publishing: %d ports", cfg.ports)
		pr, err := p.PublishRange(20000, cfg.ports)
		if err != nil {
			return fmt.Errorf("port publishing: %w", err)
		}
		res.publish(name, cfg.ports, pr)
	}
	if sc, ok := s.(scaler); ok && cfg.scale > 0 {
		logf("scale: %d containers", cfg.scale)
		sr, err := sc.Scale(cfg.scale)
		if err != nil {
			return fmt.Errorf("scale: %w", err)
		}
		res.scale(name, cfg.scale, sr)
	}
	return nil
}

// apiAttacher is a system that can also be attached through the Engine API without a client
// process (Docker), or through a CLI as well as its API (cnet): the extra rows compare like
// with like.
type apiAttacher interface {
	AttachAPI(i int) (time.Duration, error)
	DetachAPI(i int) (time.Duration, error)
}

type cliAttacher interface {
	AttachCLI(i int) (time.Duration, error)
	DetachCLI(i int) (time.Duration, error)
}

// benchAttach attaches the largest size's containers one after the other, then detaches the
// first 100 of them; each size's figures are those of the first size attaches.
func benchAttach(a attacher, name string, sizes []int, res *results) error {
	n := sizes[len(sizes)-1]
	if err := a.PrepareAttach(n); err != nil {
		return err
	}
	// Starting hundreds of containers leaves the kernel busy for a while (IPv6 duplicate
	// address detection and router solicitations on every new host-side veth, namespaces
	// being torn down): attaches right after it were seen 5x slower than on a quiet machine.
	// Every system gets the same pause, so each is measured settled.
	time.Sleep(5*time.Second + time.Duration(n)*10*time.Millisecond)
	// Detach is measured on the first 100: its cost does not grow with the network's size as
	// the run's time does (each detach of Docker's, Podman's or CNI's is ~0.1 s).
	on, off := make([]time.Duration, n), make([]time.Duration, min(n, 100))
	for i := range n {
		var err error
		if on[i], err = a.Attach(i); err != nil {
			return err
		}
	}
	for i := range off {
		var err error
		if off[i], err = a.Detach(i); err != nil {
			return err
		}
	}
	res.attach(name, sizes, on, off)
	// The other way of attaching, on up to 100 of the same containers.
	m := min(n, 100)
	other := make([]time.Duration, m)
	twice := func(at, de func(int) (time.Duration, error)) error {
		for i := range m {
			var err error
			if other[i], err = at(i); err != nil {
				return err
			}
			if _, err := de(i); err != nil {
				return err
			}
		}
		return nil
	}
	switch x := a.(type) {
	case cliAttacher:
		if err := twice(x.AttachCLI, x.DetachCLI); err != nil {
			return fmt.Errorf("through the CLI: %w", err)
		}
		res.attachOther(name, m, other, on[:m])
	case apiAttacher:
		if err := twice(x.AttachAPI, x.DetachAPI); err != nil {
			return fmt.Errorf("through the API: %w", err)
		}
		res.attachOther(name, m, on[:m], other)
	default:
		res.attachOther(name, m, on[:m], nil)
	}
	return nil
}
