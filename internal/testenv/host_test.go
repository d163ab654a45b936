package testenv

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestMain builds the cnet binary once and removes it after the run.
func TestMain(m *testing.M) { os.Exit(Main(m)) }

// TestDaemonArgs checks that a host's daemon args survive a kill, a stop and the cleanup
// check's restart while one start's own args do not, and that links the test declared are
// not counted as leaks (the cleanup check, which runs after this, would fail on extra0).
func TestDaemonArgs(t *testing.T) {
	h := NewHostWith(t, HostOptions{DaemonArgs: []string{"--no-connect-translation"}, Links: []string{"extra0"}})
	h.MustRun("ip", "link", "add", "extra0", "type", "bridge")
	cmdline := func() string {
		b, _ := os.ReadFile("/proc/" + strconv.Itoa(h.DaemonPid()) + "/cmdline")
		return strings.ReplaceAll(string(b), "\x00", " ")
	}
	if c := cmdline(); !strings.Contains(c, "--no-connect-translation") {
		t.Errorf("first start: %s", c)
	}
	h.KillDaemon()
	h.StartDaemon("--userland-proxy")
	if c := cmdline(); !strings.Contains(c, "--no-connect-translation") || !strings.Contains(c, "--userland-proxy") {
		t.Errorf("start with an arg of its own: %s", c)
	}
	h.StopDaemon()
	h.StartDaemon()
	if c := cmdline(); !strings.Contains(c, "--no-connect-translation") || strings.Contains(c, "--userland-proxy") {
		t.Errorf("start without args: %s", c)
	}
	h.StopDaemon() // the cleanup check starts it again, with the host's args
}
