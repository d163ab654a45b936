package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Env is what every system shares in one run.
type Env struct {
	Work    string // the run's scratch directory; removed at the end
	Rootfs  string // a busybox root filesystem: bin/busybox, nothing else
	Image   string // Rootfs as a tarball, for docker/podman import
	Cnet    string // the cnet binary built for this run
	CNITool string // cnitool, built from the Go module of containernetworking/cni
	CNIPath string // the reference plugins (Debian's containernetworking-plugins)
}

// Dir returns a fresh directory under the run's scratch directory.
func (e *Env) Dir(name string) (string, error) {
	d := filepath.Join(e.Work, name)
	return d, os.MkdirAll(d, 0o755)
}

// logf reports progress on stderr (the table goes to stdout).
func logf(format string, args ...any) { log.Printf(format, args...) }

// run runs a command and returns its standard output; the error carries its standard error.
func run(name string, args ...string) (string, error) {
	return runCmd(exec.Command(name, args...))
}

func runCmd(c *exec.Cmd) (string, error) {
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	if err := c.Run(); err != nil {
		return out.String(), fmt.Errorf("%s: %w: %s", strings.Join(c.Args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// timed runs a command and returns how long it took, from fork to exit: what a user waits for.
func timed(c *exec.Cmd) (time.Duration, error) {
	start := time.Now()
	_, err := runCmd(c)
	return time.Since(start), err
}

// netnsHost is a throwaway host network namespace made with `ip netns add`; commands run in it
// through nsenter (not `ip netns exec`, which remounts /sys: dockerd then finds no cgroups).
type netnsHost struct {
	name string
}

func newNetnsHost(name string) (*netnsHost, error) {
	if _, err := run("ip", "netns", "add", name); err != nil {
		return nil, err
	}
	h := &netnsHost{name: name}
	if _, err := h.run("ip", "link", "set", "lo", "up"); err != nil {
		h.Close()
		return nil, err
	}
	return h, nil
}

// Path is the namespace's bind mount.
func (h *netnsHost) Path() string { return "/run/netns/" + h.name }

// Cmd is a command that runs in the namespace.
func (h *netnsHost) Cmd(name string, args ...string) *exec.Cmd {
	return exec.Command("nsenter", append([]string{"--net=" + h.Path(), "--", name}, args...)...)
}

func (h *netnsHost) run(name string, args ...string) (string, error) {
	return runCmd(h.Cmd(name, args...))
}

// Close deletes the namespace; what is left in it (veths, bridges, tables) goes with it.
func (h *netnsHost) Close() error {
	if h == nil {
		return nil
	}
	_, err := run("ip", "netns", "del", h.name)
	return err
}

// rssKB is a process's resident set size in KiB.
func rssKB(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		}
	}
	return 0, fmt.Errorf("no VmRSS for process %d", pid)
}

// pids lists the machine's processes: counting them before and after an operation tells the
// processes it left running.
func pids() (map[int]bool, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	m := map[int]bool{}
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			m[pid] = true
		}
	}
	return m, nil
}

// newProcs counts processes in after that were not in before.
func newProcs(before, after map[int]bool) int {
	n := 0
	for pid := range after {
		if !before[pid] {
			n++
		}
	}
	return n
}

// firewall counts the nftables rules and set/map elements a namespace holds (iptables-nft's
// rules included: Debian's iptables writes nftables), from `nft -j list ruleset` run by cmd.
func firewall(cmd func(name string, args ...string) *exec.Cmd) (rules, elements int, err error) {
	out, err := runCmd(cmd("nft", "-j", "list", "ruleset"))
	if err != nil {
		return 0, 0, err
	}
	var doc struct {
		Nftables []map[string]json.RawMessage `json:"nftables"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		return 0, 0, fmt.Errorf("reading nft's JSON: %w", err)
	}
	for _, obj := range doc.Nftables {
		if _, ok := obj["rule"]; ok {
			rules++
		}
		for _, kind := range []string{"set", "map"} {
			if raw, ok := obj[kind]; ok {
				var s struct {
					Elem []json.RawMessage `json:"elem"`
				}
				if err := json.Unmarshal(raw, &s); err == nil {
					elements += len(s.Elem)
				}
			}
		}
	}
	return rules, elements, nil
}
