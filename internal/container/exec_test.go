package container

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestExec(t *testing.T) {
	requireRoot(t)
	path := bbPath(t)
	hosts := filepath.Join(t.TempDir(), "hosts")
	if err := os.WriteFile(hosts, []byte("10.1.2.3\texec-ctr\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := start(t, Spec{ID: "exec", Args: []string{"sleep", "100"}, Env: []string{path}, Hostname: "exec-ctr", HostsPath: hosts, WorkingDir: "/tmp"})
	pid := waitPid(t, c.dir)

	for _, tc := range []struct {
		name       string
		spec       ExecSpec
		input      string
		wantOut    string
		wantErr    string // substring of stderr
		wantCode   int
		wantFailed bool // Serve returns an error: the process never started
	}{
		{name: "hostname", spec: ExecSpec{Args: []string{"hostname"}}, wantOut: "exec-ctr\n"},
		{name: "hosts", spec: ExecSpec{Args: []string{"cat", "/etc/hosts"}}, wantOut: "10.1.2.3\texec-ctr\n"},
		{name: "links", spec: ExecSpec{Args: []string{"ls", "/sys/class/net"}}, wantOut: "lo\n"},
		{name: "default working dir", spec: ExecSpec{Args: []string{"pwd"}}, wantOut: "/tmp\n"},
		{name: "working dir", spec: ExecSpec{Args: []string{"pwd"}, WorkingDir: "/etc"}, wantOut: "/etc\n"},
		{name: "exit code", spec: ExecSpec{Args: []string{"sh", "-c", "echo e >&2; exit 5"}}, wantErr: "e\n", wantCode: 5},
		{name: "stdin", spec: ExecSpec{Args: []string{"cat"}, OpenStdin: true}, input: "to cat\n", wantOut: "to cat\n"},
		{name: "not found", spec: ExecSpec{Args: []string{"nosuchcmd"}}, wantErr: `exec: "nosuchcmd": executable file not found in $PATH`, wantCode: 127, wantFailed: true},
		{name: "not executable", spec: ExecSpec{Args: []string{hosts}}, wantErr: `exec: "` + hosts + `": permission denied`, wantCode: 126, wantFailed: true},
		{name: "bad working dir", spec: ExecSpec{Args: []string{"pwd"}, WorkingDir: "/nonexistent"}, wantErr: "chdir to working directory", wantCode: 126, wantFailed: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := tc.spec
			spec.Env = []string{path}
			e := NewExec(pid, spec)
			if e.ExitCode() != -1 || e.Running() || e.Pid() != 0 {
				t.Errorf("before Serve: code %d running %v pid %d", e.ExitCode(), e.Running(), e.Pid())
			}
			got, err := serve(t, e, tc.input, true)
			if (err != nil) != tc.wantFailed {
				t.Errorf("Serve error %v, want failure %v", err, tc.wantFailed)
			}
			stdout, stderr := demux(t, got)
			if stdout != tc.wantOut || !strings.Contains(stderr, tc.wantErr) || (tc.wantErr == "" && stderr != "") {
				t.Errorf("stdout %q stderr %q, want %q and %q", stdout, stderr, tc.wantOut, tc.wantErr)
			}
			if e.ExitCode() != tc.wantCode || e.Running() {
				t.Errorf("after Serve: code %d running %v, want code %d", e.ExitCode(), e.Running(), tc.wantCode)
			}
			if tc.wantFailed != (e.Pid() == 0) {
				t.Errorf("Pid() = %d", e.Pid())
			}
		})
	}

	t.Run("tty", func(t *testing.T) {
		e := NewExec(pid, ExecSpec{Args: []string{"tty"}, Env: []string{path}, Tty: true})
		if !e.Tty() {
			t.Error("Tty() false")
		}
		got, err := serve(t, e, "", false)
		if err != nil || !strings.HasPrefix(string(got), "/dev/pts/") || !strings.HasSuffix(string(got), "\r\n") {
			t.Errorf("tty exec output %q, err %v", got, err)
		}
	})

	t.Run("twice", func(t *testing.T) {
		e := NewExec(pid, ExecSpec{Args: []string{"hostname"}, Env: []string{path}})
		serve(t, e, "", false)
		if _, err := serve(t, e, "", false); err == nil {
			t.Error("second Serve succeeded")
		}
	})

	t.Run("container gone", func(t *testing.T) {
		e := NewExec(1<<22+12345, ExecSpec{Args: []string{"hostname"}})
		if _, err := serve(t, e, "", false); err == nil {
			t.Error("exec into a missing process succeeded")
		}
	})
}

// buildRootfs makes a minimal root filesystem: busybox and a few applet links (one of them an
// absolute link, which must resolve inside the rootfs), and the directories the kernel
// filesystems are mounted on. It has no /etc/hosts: the container's is created to mount over.
func buildRootfs(t *testing.T) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "rootfs")
	for _, d := range []string{"bin", "etc", "proc", "dev", "sys", "tmp"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	src, err := os.Open(busybox)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(filepath.Join(root, "bin/busybox"), os.O_WRONLY|os.O_CREATE, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/bin/busybox", filepath.Join(root, "bin/sh")); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"cat", "hostname", "ls", "sleep"} {
		if err := os.Symlink("busybox", filepath.Join(root, "bin", a)); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestRootfs(t *testing.T) {
	requireRoot(t)
	root := buildRootfs(t)
	hosts := filepath.Join(t.TempDir(), "hosts")
	if err := os.WriteFile(hosts, []byte("10.4.4.4\trootfs-ctr\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := start(t, Spec{ID: "rootfs", Args: []string{"sleep", "100"}, Env: []string{"PATH=/bin"},
		Hostname: "rootfs-ctr", HostsPath: hosts, Rootfs: root})
	pid := waitPid(t, c.dir)

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"cat", "/etc/hosts"}, "10.4.4.4\trootfs-ctr\n"},
		{[]string{"hostname"}, "rootfs-ctr\n"},
		{[]string{"ls", "/"}, "bin\ndev\netc\nproc\nsys\ntmp\n"},
		{[]string{"sh", "-c", "test -r /proc/self/stat && test -c /dev/null && ls /sys/class/net"}, "lo\n"},
	} {
		e := NewExec(pid, ExecSpec{Args: tc.args})
		got, err := serve(t, e, "", false)
		stdout, stderr := demux(t, got)
		if err != nil || stdout != tc.want || e.ExitCode() != 0 {
			t.Errorf("exec %q: stdout %q stderr %q code %d err %v, want %q", tc.args, stdout, stderr, e.ExitCode(), err, tc.want)
		}
	}

	// The container's own process sees the same.
	r := start(t, Spec{ID: "rootfs-run", Args: []string{"sh", "-c", "cat /etc/hosts; ls /bin"}, Env: []string{"PATH=/bin"}, HostsPath: hosts, Rootfs: root})
	if st, ok := r.wait(t); !ok || st.Code != 0 {
		t.Fatalf("exit %+v %v; log %q", st, ok, r.logText(t))
	}
	if out, _ := r.logStreams(t); out != "10.4.4.4\trootfs-ctr\nbusybox\ncat\nhostname\nls\nsh\nsleep\n" {
		t.Errorf("output %q", out)
	}
	// On the host, the rootfs got only the empty file that was mounted over.
	if b, err := os.ReadFile(filepath.Join(root, "etc/hosts")); err != nil || len(b) != 0 {
		t.Errorf("rootfs etc/hosts on the host: %q, %v", b, err)
	}
}

// A rootfs with nothing but the command: no /proc, /dev or /sys to mount, and no /etc to hold
// the hosts file, which is created.
func TestBareRootfs(t *testing.T) {
	requireRoot(t)
	root := buildRootfs(t)
	for _, d := range []string{"etc", "proc", "dev", "sys", "tmp"} {
		if err := os.Remove(filepath.Join(root, d)); err != nil {
			t.Fatal(err)
		}
	}
	hosts := filepath.Join(t.TempDir(), "hosts")
	if err := os.WriteFile(hosts, []byte("10.5.5.5\tbare\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := start(t, Spec{ID: "bare", Args: []string{"sleep", "100"}, HostsPath: hosts, Rootfs: root})
	pid := waitPid(t, c.dir)
	e := NewExec(pid, ExecSpec{Args: []string{"sh", "-c", "cat /etc/hosts; ls /"}})
	got, err := serve(t, e, "", false)
	stdout, stderr := demux(t, got)
	if err != nil || e.ExitCode() != 0 || stdout != "10.5.5.5\tbare\nbin\netc\n" {
		t.Errorf("exec: stdout %q stderr %q code %d err %v", stdout, stderr, e.ExitCode(), err)
	}
}
