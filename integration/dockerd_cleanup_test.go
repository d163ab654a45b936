package integration

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cleanup removes what the dockerd made, in the order a user would (containers through
// Docker, then the daemon), and then by force whatever is left. It runs before the host's own
// cleanup check and teardown.
func (d *dockerd) cleanup() {
	t, h := d.t, d.h
	if !h.Dead() {
		d.mu.Lock()
		running := d.cmd != nil
		d.mu.Unlock()
		if !running {
			// A stopped or crashed dockerd: its containers (and the endpoints network plugins
			// made for them) are removed through Docker, as after a reboot. Their processes
			// are killed first: dockerd would otherwise stop each at its start, SIGTERM and
			// 10 s, which busybox as PID 1 ignores.
			if err := d.killCgroup(); err != nil {
				t.Errorf("cleanup: %v", err)
			}
			if err := d.startErr(); err != nil {
				t.Errorf("cleanup: restarting dockerd to remove its containers: %v", err)
			}
		}
		d.mu.Lock()
		running = d.cmd != nil
		d.mu.Unlock()
		if running {
			if out, err := d.run("ps", "-aq"); err != nil {
				t.Errorf("cleanup: %v", err)
			} else if ids := strings.Fields(out); len(ids) > 0 {
				if _, err := d.run(append([]string{"rm", "-f"}, ids...)...); err != nil {
					t.Errorf("cleanup: %v", err)
				}
			}
			d.stop()
		}
		// What a killed dockerd leaves: its containerd and the shims (their command lines name
		// the exec root), and their containers (in the cgroup).
		if err := d.killLeft(); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	}
	if err := d.killCgroup(); err != nil {
		t.Errorf("cleanup: %v", err)
	}
	if !h.Dead() {
		// dockerd may leave mounts under its roots (a killed one: containers' shm, network
		// namespaces); the host's check counts any under h.Dir as a leak of cnet's.
		if err := d.unmountUnder(); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		if out, err := h.Run("umount", "-R", "/opt"); err != nil {
			t.Errorf("cleanup: unmounting the host's /opt: %v\n%s", err, out)
		}
		if out, err := h.Run("umount", "-R", "/run"); err != nil {
			// A socket still bound there (a daemon of the test's serving /run/docker/plugins)
			// keeps /run busy: it goes with the host's mount namespace.
			t.Logf("cleanup: unmounting the host's /run: %v %s; detaching it", err, out)
			if out, err := h.Run("umount", "-R", "-l", "/run"); err != nil {
				t.Errorf("cleanup: detaching the host's /run: %v\n%s", err, out)
			}
		}
	}
	if err := d.removeCgroups(); err != nil {
		t.Errorf("cleanup: %v", err)
	}
	if t.Failed() {
		d.mu.Lock()
		for _, c := range d.calls {
			t.Log(c)
		}
		d.mu.Unlock()
		t.Logf("dockerd log:\n%s", d.log())
	}
}

// hostProcs returns the processes (PIDs as the test sees them) of the host's PID namespace,
// zombies left out, whose command line contains dir.
func (d *dockerd) hostProcs(dir string) []int {
	hostNS, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", d.h.Pid()))
	if err != nil {
		return nil
	}
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid)); err != nil || ns != hostNS {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if i := bytes.LastIndexByte(stat, ')'); err != nil || i < 0 || bytes.HasPrefix(bytes.TrimSpace(stat[i+1:]), []byte("Z")) {
			continue
		}
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err == nil && bytes.Contains(cmdline, []byte(dir)) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// killLeft kills the processes of the host whose command line names dockerd's directory (its
// containerd and shims; dockerd itself if it is still there) and waits for them to be gone.
func (d *dockerd) killLeft() error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		pids := d.hostProcs(d.dir)
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes of dockerd's %s still alive after 10 s of SIGKILL: %v", d.dir, pids)
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// cgroupDir returns the directory of the unified cgroup hierarchy in which the host's
// /sys/fs/cgroup is mounted, as the test process reaches it.
func (d *dockerd) cgroupDir() string {
	if !d.h.Dead() {
		return d.h.Path("/sys/fs/cgroup")
	}
	// The host's mount namespace is gone; its cgroup2 mount was the machine's hierarchy.
	mounts, _ := os.ReadFile("/proc/self/mounts")
	for _, line := range strings.Split(string(mounts), "\n") {
		if f := strings.Fields(line); len(f) > 2 && f[2] == "cgroup2" {
			return f[1]
		}
	}
	return ""
}

// killCgroup kills every process left in the containers' cgroup and waits until it is empty.
func (d *dockerd) killCgroup() error {
	root := d.cgroupDir()
	if root == "" {
		return nil
	}
	cg := filepath.Join(root, d.cgroup)
	if _, err := os.Stat(cg); err != nil {
		return nil
	}
	if err := os.WriteFile(filepath.Join(cg, "cgroup.kill"), []byte("1"), 0o644); err != nil {
		return fmt.Errorf("killing the processes of cgroup %s: %w", d.cgroup, err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		events, err := os.ReadFile(filepath.Join(cg, "cgroup.events"))
		if err != nil || bytes.Contains(events, []byte("populated 0")) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cgroup %s still has processes 10 s after cgroup.kill", d.cgroup)
		}
	}
}

// removeCgroups removes the containers' cgroup and those under it, deepest first.
func (d *dockerd) removeCgroups() error {
	root := d.cgroupDir()
	if root == "" {
		return nil
	}
	var dirs []string
	_ = filepath.WalkDir(filepath.Join(root, d.cgroup), func(path string, e os.DirEntry, err error) error {
		if err == nil && e.IsDir() {
			dirs = append(dirs, path)
		}
		return nil
	})
	for _, dir := range slices.Backward(dirs) {
		if err := os.Remove(dir); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("removing Docker's cgroup %s: %w", strings.TrimPrefix(dir, root), err)
		}
	}
	return nil
}

// unmountUnder detaches every mount of the host's mount namespace under dockerd's directory,
// deepest first.
func (d *dockerd) unmountUnder() error {
	mounts, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", d.h.Pid()))
	if err != nil {
		return err
	}
	var points []string
	for _, line := range strings.Split(string(mounts), "\n") {
		if f := strings.Fields(line); len(f) > 4 && (f[4] == d.dir || strings.HasPrefix(f[4], d.dir+"/")) {
			points = append(points, f[4])
		}
	}
	if len(points) == 0 {
		return nil
	}
	sort.Sort(sort.Reverse(sort.StringSlice(points)))
	points = slices.Compact(points)
	if out, err := d.h.Run("umount", append([]string{"-l"}, points...)...); err != nil {
		return fmt.Errorf("unmounting what dockerd left mounted (%s): %v\n%s", strings.Join(points, " "), err, out)
	}
	return nil
}
