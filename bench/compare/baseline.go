package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// baselinePrefix names the baselines' namespaces: a baseline's host namespace is
// baselinePrefix-N (N its number), its two containers' baselinePrefix-N-c1 and -c2.
const baselinePrefix = "cnetcmp-base"

// baselineNet is a hand-made bridge and two veths, the way every system here wires a
// container, with no NAT or proxy in the way: the machine's physical limit, against which the
// systems' Direct and CtrToCtr throughputs are read. Nothing is published on it.
//
// withNAT adds what every system that publishes ports or masquerades has and a bare bridge
// has not: connection tracking (one NAT rule that no measured packet matches), so the
// systems' rules can be read against this second baseline as well.
type baselineNet struct {
	host *netnsHost
	ctrs []*netnsHost
	ips  []string
}

// newBaseline makes baseline number n (its own namespaces, bridge and subnet 10.90.n.0/24).
func newBaseline(n int, withNAT bool) (b *baselineNet, err error) {
	prefix := fmt.Sprintf("%s-%d", baselinePrefix, n)
	b = &baselineNet{}
	defer func() {
		if err != nil {
			err = errors.Join(err, b.Close())
		}
	}()
	if b.host, err = newNetnsHost(prefix); err != nil {
		return b, fmt.Errorf("making the baseline's host namespace (an earlier run's leftover? ip netns del %s): %w", prefix, err)
	}
	// The bridge has the gateway address, as a container network's does; the containers sit
	// on its subnet with a default route through it.
	bridge, gw, subnetBits := fmt.Sprintf("cnetcmp-br%d", n), fmt.Sprintf("10.90.%d.1", n), "/24"
	steps := [][]string{
		{"link", "add", bridge, "type", "bridge"},
		{"addr", "add", gw + subnetBits, "dev", bridge},
		{"link", "set", bridge, "up"},
	}
	for _, s := range steps {
		if _, err := b.host.run("ip", s...); err != nil {
			return b, fmt.Errorf("making the baseline's bridge: %w", err)
		}
	}
	for i := range 2 {
		ip := fmt.Sprintf("10.90.%d.%d", n, i+2)
		c, err := newNetnsHost(fmt.Sprintf("%s-c%d", prefix, i+1))
		if err != nil {
			return b, fmt.Errorf("making the baseline's container namespace (an earlier run's leftover? ip netns del %s-c%d): %w", prefix, i+1, err)
		}
		b.ctrs = append(b.ctrs, c)
		b.ips = append(b.ips, ip)
		veth := fmt.Sprintf("cnetcmp-v%d", i+1)
		hostSteps := [][]string{
			{"link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", c.name},
			{"link", "set", veth, "master", bridge, "up"},
		}
		for _, s := range hostSteps {
			if _, err := b.host.run("ip", s...); err != nil {
				return b, fmt.Errorf("wiring the baseline's container %d: %w", i+1, err)
			}
		}
		ctrSteps := [][]string{
			{"addr", "add", ip + subnetBits, "dev", "eth0"},
			{"link", "set", "eth0", "up"},
			{"route", "add", "default", "via", gw},
		}
		for _, s := range ctrSteps {
			if _, err := c.run("ip", s...); err != nil {
				return b, fmt.Errorf("addressing the baseline's container %d: %w", i+1, err)
			}
		}
	}
	if withNAT {
		// One masquerade rule for traffic leaving by another interface: no packet measured
		// matches it, but a NAT hook makes the kernel track every connection of the namespace.
		if _, err := b.host.run("nft", `add table ip cnetcmp; add chain ip cnetcmp post { type nat hook postrouting priority srcnat; }; add rule ip cnetcmp post oifname != "`+bridge+`" masquerade`); err != nil {
			return b, fmt.Errorf("baseline with NAT: %w", err)
		}
	}
	return b, nil
}

// paths are the baseline's host → container and container → container paths, written to r.
func (b *baselineNet) paths(r *DataPathResult) []path {
	return systemPaths(r, b.ctrs[0].Cmd, b.host.Cmd, b.ctrs[1].Cmd, b.ips[0], 0)
}

// Close deletes the baseline's namespaces (and with them its links and rules).
func (b *baselineNet) Close() error {
	var errs []error
	for _, c := range b.ctrs {
		if err := c.Close(); err != nil {
			errs = append(errs, fmt.Errorf("deleting the baseline's namespace %s: %w", c.name, err))
		}
	}
	if b.host != nil {
		if err := b.host.Close(); err != nil {
			errs = append(errs, fmt.Errorf("deleting the baseline's host namespace: %w", err))
		}
	}
	return errors.Join(errs...)
}

// iperf measures TCP throughput from a client to a server, in Gbit/s, the way every system's
// data path benchmark does, so that their numbers and the baseline's compare. server and
// client make commands that run where each end lives (netnsHost.Cmd, or a container's
// namespace entered with nsenter); iperf3 must be runnable through both.
//
// The server listens on serverPort, handles one test (-1) and exits; the client connects to
// target:clientPort, which differs from serverPort when the port is published (127.0.0.1:P on
// the host → the container's serverPort), and runs for seconds. The result is what the server
// received (end.sum_received of the client's -J report), so a client whose sends sit in a
// buffer does not count them. iperf3 is never left running: the server is killed if the test
// fails or it outlives the test.
func iperf(server, client func(name string, args ...string) *exec.Cmd, target string, serverPort, clientPort, seconds int) (float64, error) {
	srv := server("iperf3", "-s", "-1", "--forceflush", "-p", strconv.Itoa(serverPort))
	out, err := srv.StdoutPipe()
	if err != nil {
		return 0, err
	}
	var errb strings.Builder
	srv.Stderr = &errb
	if err := srv.Start(); err != nil {
		return 0, fmt.Errorf("starting the iperf3 server: %w", err)
	}
	exited := make(chan error, 1)
	ready := make(chan bool, 1)
	go func() {
		// The server says it listens once it does (flushed with --forceflush: stdout is a
		// pipe); the rest of what it prints is drained so that it never blocks on the pipe.
		sc := bufio.NewScanner(out)
		announced := false
		for sc.Scan() {
			if !announced && strings.Contains(sc.Text(), "Server listening on") {
				announced = true
				ready <- true
			}
		}
		_, _ = io.Copy(io.Discard, out)
		if !announced {
			ready <- false
		}
		exited <- srv.Wait()
	}()
	stop := func() {
		_ = srv.Process.Kill()
		<-exited
	}

	select {
	case ok := <-ready:
		if !ok {
			err := <-exited
			return 0, fmt.Errorf("the iperf3 server exited before listening on port %d (%v): %s", serverPort, err, strings.TrimSpace(errb.String()))
		}
	case <-time.After(10 * time.Second):
		stop()
		return 0, fmt.Errorf("the iperf3 server did not listen on port %d within 10s: %s", serverPort, strings.TrimSpace(errb.String()))
	}

	cl := client("iperf3", "-c", target, "-p", strconv.Itoa(clientPort), "-t", strconv.Itoa(seconds), "-J")
	report, cerr := runCmd(cl)
	var rep struct {
		Error string `json:"error"`
		End   struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	jerr := json.Unmarshal([]byte(report), &rep)
	if cerr != nil || rep.Error != "" || jerr != nil {
		stop()
		where := fmt.Sprintf("iperf3 client to %s:%d (server port %d; is the path open?)", target, clientPort, serverPort)
		switch {
		case rep.Error != "": // iperf3 -J reports its errors in the JSON, not on stderr
			return 0, fmt.Errorf("%s: %s", where, rep.Error)
		case cerr != nil:
			return 0, fmt.Errorf("%s: %w", where, cerr)
		default:
			return 0, fmt.Errorf("%s: reading its JSON report: %w", where, jerr)
		}
	}

	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		stop()
	}
	if rep.End.SumReceived.BitsPerSecond <= 0 {
		return 0, fmt.Errorf("iperf3 client to %s:%d reported no data received", target, clientPort)
	}
	return rep.End.SumReceived.BitsPerSecond / 1e9, nil
}
