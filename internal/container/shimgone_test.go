package container

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cnet-dev/cnet/internal/faults"
)

// TestDaemonGone: the shim tells a daemon that still reads its answer from one that died (the
// read end of the handshake pipe closed), and an answer to the latter fails.
func TestDaemonGone(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	s := &shim{hs: w}
	if s.daemonGone() {
		t.Fatal("daemonGone with the read end open")
	}
	r.Close()
	if !s.daemonGone() {
		t.Fatal("not daemonGone with the read end closed")
	}
	if err := s.answer(nil); err == nil {
		t.Fatal("answering a closed pipe succeeded")
	}
	if s.daemonGone() || s.answer(nil) != nil {
		t.Fatal("a shim that answered has no daemon to lose")
	}
}

// TestShimOfDeadDaemon: a daemon killed right after forking the shim (the shim-forked crash
// point) never records the container as running, so the shim must not start the process: it
// records why and exits, leaving no process and no pid file. Before the shim checked, the
// process ran on, unknown to the restarted daemon, whenever the shim wrote its pid file only
// after the restarted daemon had looked for it.
func TestShimOfDeadDaemon(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	spec, err := json.Marshal(Spec{ID: "orphan", Args: []string{"sleep", "100"}, Env: []string{bbPath(t)}, NetNSPath: newNetns(t)})
	if err != nil {
		t.Fatal(err)
	}
	daemon := exec.Command("/proc/self/exe", "test-daemon", dir, string(spec))
	daemon.Env = append(os.Environ(), faults.Env+"=shim-forked")
	if err := daemon.Run(); err == nil {
		t.Fatal("the daemon did not crash at shim-forked")
	}
	deadline := time.Now().Add(10 * time.Second)
	st, ok := ReadExit(dir)
	for !ok && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		st, ok = ReadExit(dir)
	}
	if !ok || !strings.Contains(st.Error, "daemon died") {
		t.Errorf("the shim of a dead daemon recorded %+v (%v), want that it did not start", st, ok)
	}
	if _, err := os.Stat(filepath.Join(dir, pidFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a pid file is left: %v", err)
	}
	// The shim was reparented to this test (a subreaper): reap it once it is gone.
	for time.Now().Before(deadline) {
		var ws unix.WaitStatus
		if pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil); err != nil || pid == 0 && len(children()) == 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestKillShims: a shim waiting for its attacher (a start whose daemon then died before
// recording it) is found by its directory and killed; another container's shim is left alone.
func TestKillShims(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	spec, err := json.Marshal(Spec{ID: "waiting", Args: []string{"sleep", "100"}, Env: []string{bbPath(t)}, NetNSPath: newNetns(t), Attach: true})
	if err != nil {
		t.Fatal(err)
	}
	daemon, stdin, p := startOtherDaemon(t, dir, spec)
	if killed := KillShims(t.TempDir()); len(killed) != 0 {
		t.Errorf("KillShims of another directory signalled %v", killed)
	}
	if killed := KillShims(t.TempDir(), dir); len(killed) != 1 || killed[0] != dir {
		t.Errorf("KillShims signalled %v, want the one waiting in %s", killed, dir)
	}
	stdin.Close()
	_ = daemon.Wait()
	// The shim, orphaned by the other daemon, comes back to this test (a subreaper) to be reaped.
	var ws unix.WaitStatus
	if _, err := unix.Wait4(p.ShimPid, &ws, 0, nil); err != nil {
		t.Fatalf("reaping the shim: %v", err)
	}
	if !ws.Signaled() || ws.Signal() != unix.SIGKILL {
		t.Errorf("the shim ended with %v, want SIGKILL", ws)
	}
	if Pid(dir) != 0 {
		t.Error("the container's process started")
	}
}
