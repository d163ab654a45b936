package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// checkClean removes every container and user network through the CLI, as a user would, and
// then fails the test if cnet left anything of its own in the host: a veth or bridge, a
// namespace file, a mount under the host's private root. A stopped daemon is started again
// (with the host's daemon args) to do it; a host whose daemon never ran is only checked, and
// a killed host (Kill) has nothing left to check.
func (h *Host) checkClean() {
	t := h.t
	defer h.showLogs()
	if h.Dead() {
		return
	}
	if h.started {
		if h.daemon == nil {
			h.StartDaemon()
		}
		if ids, _, code := h.cli("ps", "-aq"); code == 0 {
			for _, id := range strings.Fields(ids) {
				if _, e, code := h.cli("rm", "-f", id); code != 0 {
					t.Errorf("cleanup: rm -f %s: %s", id, e)
				}
			}
		}
		if _, e, code := h.cli("network", "prune", "-f"); code != 0 {
			t.Errorf("cleanup: network prune: %s", e)
		}
	}
	var leaks []string
	// Removal is synchronous, but give the kernel a moment to finish deleting namespaces' links.
	deadline := time.Now().Add(3 * time.Second)
	for {
		leaks = h.leaks()
		if len(leaks) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(leaks) > 0 {
		t.Errorf("cnet left these behind after every container and network was removed:\n  %s", strings.Join(leaks, "\n  "))
	}
}

// showLogs shows the host's CLI calls and daemon log in a failed test.
func (h *Host) showLogs() {
	t := h.t
	if t.Failed() {
		h.logMu.Lock()
		for _, l := range h.logs {
			t.Log(l)
		}
		h.logMu.Unlock()
		if h.started {
			t.Logf("daemon log:\n%s", h.DaemonLog())
		}
	}
}

func (h *Host) leaks() []string {
	var leaks []string
	out, err := h.Run("ip", "-o", "link", "show")
	if err != nil {
		return []string{fmt.Sprintf("listing links failed: %v %s", err, out)}
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		name := strings.TrimSuffix(strings.SplitN(f[1], "@", 2)[0], ":")
		if name != "lo" && name != "cnet0" && !slices.Contains(h.ownLinks, name) {
			leaks = append(leaks, "link "+name)
		}
	}
	nsDir := filepath.Join(fmt.Sprintf("/proc/%d/root", h.pid), h.Dir, "exec", "netns")
	if entries, err := os.ReadDir(nsDir); err == nil {
		for _, e := range entries {
			leaks = append(leaks, "namespace file "+e.Name())
		}
	}
	mounts, _ := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", h.pid))
	for _, line := range strings.Split(string(mounts), "\n") {
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], h.Dir) {
			leaks = append(leaks, "mount "+f[4])
		}
	}
	return leaks
}

// teardown stops the daemon (SIGTERM, as an administrator would) before the host's namespaces
// are killed by BareHost's own cleanup. It runs even when the test failed half-way.
func (h *Host) teardown() {
	if h.daemon != nil && !h.Dead() {
		h.signalDaemon(syscall.SIGTERM)
	}
}
