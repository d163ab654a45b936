package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cnet-dev/cnet/internal/testenv"
)

// podmanCallTimeout bounds every podman call: far above what one takes (a second or two).
const podmanCallTimeout = 60 * time.Second

// podman is Podman (with its CNI backend) set up in a test host: every path it writes, its
// storage, run and tmp directories, its locks and its CNI cache, is under the host's private
// directory or on a tmpfs of the host's own mount namespace.
type podman struct {
	t      *testing.T
	h      *testenv.Host
	dir    string
	conf   string // containers.conf
	rootfs string // a minimal busybox root for `podman run --rootfs`
	// cgroup is the cgroup under which Podman puts its containers and their conmon
	// (--cgroup-parent): one of the test's own, removed at cleanup. The host shares the
	// machine's cgroup hierarchy.
	cgroup string
}

// newPodman writes a containers.conf that forces the CNI backend with cnet's plugin directory
// and conflist (cniDir, from installCNIPlugin), and a busybox rootfs. It mounts tmpfs over /run
// in the host (Podman's network namespaces go to /run/netns, runc's state to /run/runc) and over
// /var/lib/cni (libcni's cache), so that nothing reaches the machine's own; both are unmounted
// at cleanup, after every Podman container has been removed.
func newPodman(t *testing.T, h *testenv.Host, cniDir string) *podman {
	t.Helper()
	for _, tool := range []string{"podman", "conmon", "runc", "busybox"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("Podman test needs %s: %v", tool, err)
		}
	}
	p := &podman{t: t, h: h, dir: filepath.Join(h.Dir, "podman"), cgroup: "/" + filepath.Base(h.Dir) + "-podman"}
	p.conf = filepath.Join(p.dir, "containers.conf")
	p.rootfs = filepath.Join(p.dir, "rootfs")
	for _, d := range []string{"root", "runroot", "tmp", "rootfs/bin", "rootfs/etc", "rootfs/proc", "rootfs/sys", "rootfs/dev", "rootfs/tmp", "rootfs/www"} {
		if err := os.MkdirAll(filepath.Join(p.dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// pids_limit = 0: Podman's default limit needs the pids controller in cgroup v2, which a
	// machine with a hybrid hierarchy leaves out of it.
	conf := `[containers]
pids_limit = 0

[network]
network_backend = "cni"
cni_plugin_dirs = ["` + filepath.Join(cniDir, "bin") + `"]
network_config_dir = "` + filepath.Join(cniDir, "net.d") + `"

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
lock_type = "file"
`
	if err := os.WriteFile(p.conf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	bb, err := os.ReadFile(mustLookPath(t, "busybox"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(p.rootfs, "bin", "busybox"), bb, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, app := range busyboxApplets {
		if err := os.Symlink("busybox", filepath.Join(p.rootfs, "bin", app)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(p.rootfs, "etc", "passwd"), []byte("root:x:0:0:root:/:/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(p.rootfs, "etc", "group"), []byte("root:x:0:\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(p.rootfs, "www", "index.html"), []byte("served by podman\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h.MustRun("sh", "-c", "mount -t tmpfs tmpfs /run && mkdir -p /var/lib/cni && mount -t tmpfs tmpfs /var/lib/cni")
	t.Cleanup(func() {
		if out, err := p.run("rm", "-f", "-a", "-t", "0"); err != nil {
			t.Errorf("cleanup: podman rm -f -a: %v\n%s", err, out)
		}
		if out, err := h.Run("sh", "-c", "umount -R /var/lib/cni; umount -R /run"); err != nil {
			t.Errorf("cleanup: unmounting the host's /run and /var/lib/cni: %v\n%s", err, out)
		}
		// Podman removes a container's cgroup but leaves conmon's (PARENT/conmon).
		if out, err := h.Run("sh", "-c", "test ! -d /sys/fs/cgroup"+p.cgroup+" || find /sys/fs/cgroup"+p.cgroup+" -depth -type d -exec rmdir {} +"); err != nil {
			t.Errorf("cleanup: removing Podman's cgroups under %s: %v\n%s", p.cgroup, err, out)
		}
	})
	return p
}

func mustLookPath(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// run runs `podman ARGS...` in the host with the test's containers.conf and private
// directories, killed after podmanCallTimeout.
func (p *podman) run(args ...string) (string, error) {
	full := append([]string{"CONTAINERS_CONF=" + p.conf, "podman",
		"--root", filepath.Join(p.dir, "root"), "--runroot", filepath.Join(p.dir, "runroot"),
		"--tmpdir", filepath.Join(p.dir, "tmp"), "--storage-driver", "vfs",
		"--runtime", "runc", "--cgroup-manager", "cgroupfs", "--events-backend", "file"}, args...)
	return p.h.RunTimeout(podmanCallTimeout, "env", full...)
}

// mustRun is run that fails the test on error; it returns the output, trimmed.
func (p *podman) mustRun(args ...string) string {
	p.t.Helper()
	out, err := p.run(args...)
	if err != nil {
		p.t.Fatalf("podman %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(out)
}

// TestCNIPodman: a Podman container (Podman 4's CNI backend, runc) joins a cnet network
// through cnet's CNI plugin: it reaches a cnet container by name through cnet's resolver and
// is reached from it by its own name (Podman passes it as K8S_POD_NAME); network inspect lists
// it under Podman's container ID; `podman run -p 8081:80` answers from the host and from a
// client host through cnet's NAT; removing them with Podman frees their attachments and port.
func TestCNIPodman(t *testing.T) {
	h := testenv.NewHost(t)
	seg := newSegment(t, h, "uplink0", "10.99.0.2/24")
	h.MustRun("ip", "addr", "add", "10.99.0.1/24", "dev", "uplink0")
	h.MustCLI("network", "create", "--subnet", "10.78.0.0/24", "podnet")
	runSleeper(t, h, "c1", "--network", "podnet")
	p := newPodman(t, h, installCNIPlugin(t, h, "podnet"))

	if out := p.mustRun("network", "ls", "--format", "{{.Name}} {{.Driver}}"); !strings.Contains(out, "podnet cnet") {
		t.Fatalf("podman network ls does not list the cnet network podnet:\n%s", out)
	}
	id := p.mustRun("run", "-d", "--name", "pod1", "--network", "podnet", "--cgroup-parent", p.cgroup, "--rootfs", p.rootfs, "sleep", "3600")
	t.Logf("podman container %s", id)

	// Podman wrote the container's resolv.conf from the CNI result: cnet's resolver first.
	resolv := p.mustRun("exec", "pod1", "cat", "/etc/resolv.conf")
	first := ""
	for _, line := range strings.Split(resolv, "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "nameserver" {
			first = f[1]
			break
		}
	}
	if first != "127.0.0.11" {
		t.Errorf("pod1's resolv.conf does not name cnet's resolver first:\n%s", resolv)
	}
	podIP := ""
	for cid, e := range inspectNetwork(t, h, "podnet").Containers {
		if cid == id && e.Name == "pod1" {
			podIP = strings.SplitN(e.IPv4Address, "/", 2)[0]
		}
	}
	if !strings.HasPrefix(podIP, "10.78.0.") {
		t.Fatalf("inspect podnet does not list pod1 under Podman's container ID %s: %+v", id, inspectNetwork(t, h, "podnet").Containers)
	}
	if out := p.mustRun("exec", "pod1", "ip", "-o", "-4", "addr", "show", "eth0"); !strings.Contains(out, podIP+"/24") {
		t.Errorf("pod1's eth0 lacks its address %s: %s", podIP, out)
	}

	// Both ways, by name. c1's name is in no file Podman wrote (its /etc/hosts has pod1's
	// own): it resolves through cnet's resolver, to c1's address on podnet.
	if out, err := p.run("exec", "pod1", "ping", "-c1", "-W2", "c1"); err != nil {
		t.Errorf("the Podman container cannot ping c1 by name: %v\n%s", err, out)
	} else if c1IP := ipOn(t, h, "c1", "podnet"); !strings.Contains(out, "("+c1IP+")") {
		t.Errorf("c1 resolved in the Podman container to another address than its own %s:\n%s", c1IP, out)
	}
	execPing(t, h, "c1", "pod1")

	// A published port (Podman passes it as the portMappings capability).
	p.mustRun("run", "-d", "--name", "web", "--network", "podnet", "-p", "8081:80", "--cgroup-parent", p.cgroup, "--rootfs", p.rootfs,
		"httpd", "-f", "-p", "80", "-h", "/www")
	waitFor(t, "the Podman container's published port", func() bool {
		out, _ := httpGet(h, "", "127.0.0.1", "8081")
		return strings.Contains(out, "served by podman")
	})
	for _, c := range []struct{ who, pid, addr string }{
		{"the host via its own address", "", "10.99.0.1"},
		{"the client host", seg.pid, "10.99.0.1"},
	} {
		if out, err := httpGet(h, c.pid, c.addr, "8081"); err != nil || !strings.Contains(out, "served by podman") {
			t.Errorf("the Podman container's port 8081 from %s: %v %q", c.who, err, out)
		}
	}
	p.mustRun("rm", "-f", "-t", "0", "web")
	if ports := h.MustRun("nft", "list", "map", "ip", "cnet", "ports_any"); strings.Contains(ports, "8081") {
		t.Errorf("port 8081 is still published after podman rm:\n%s", ports)
	}

	p.mustRun("rm", "-f", "-t", "0", "pod1")
	if n := inspectNetwork(t, h, "podnet"); len(n.Containers) != 1 {
		t.Errorf("podnet after podman rm holds %d endpoints, want c1's only: %+v", len(n.Containers), n.Containers)
	}
	if out, _, code := h.CLI("exec", "c1", "busybox", "ping", "-c1", "-W1", "pod1"); code == 0 {
		t.Errorf("pod1 still resolves and answers after podman rm:\n%s", out)
	}
}
