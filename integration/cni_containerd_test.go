package integration

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/cnet-dev/cnet/internal/testenv"
)

// ctrCallTimeout bounds every ctr call: far above what one takes.
const ctrCallTimeout = 60 * time.Second

// busyboxApplets are the commands the test images link to busybox.
var busyboxApplets = []string{"sh", "ping", "sleep", "nslookup", "cat", "ip", "wget", "httpd"}

// busyboxImageTar writes an image of one layer, busybox-static and its applets, as a
// `docker save` tarball tagged ref (what `ctr image import` and `podman load` read): no
// registry is reachable from CI.
func busyboxImageTar(t testing.TB, path, ref string) {
	t.Helper()
	bb, err := os.ReadFile(mustLookPath(t, "busybox"))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(h *tar.Header, data []byte) {
		h.ModTime = time.Unix(0, 0)
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"bin/", "etc/", "proc/", "sys/", "dev/", "tmp/", "www/"} {
		add(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755}, nil)
	}
	add(&tar.Header{Typeflag: tar.TypeReg, Name: "bin/busybox", Mode: 0o755, Size: int64(len(bb))}, bb)
	for _, app := range busyboxApplets {
		add(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + app, Linkname: "busybox", Mode: 0o777}, nil)
	}
	for file, data := range map[string]string{"etc/passwd": "root:x:0:0:root:/:/bin/sh\n", "etc/group": "root:x:0:\n",
		"www/index.html": "served by the busybox image\n"} {
		add(&tar.Header{Typeflag: tar.TypeReg, Name: file, Mode: 0o644, Size: int64(len(data))}, []byte(data))
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf.Bytes())), nil })
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	// Runtimes pull or import only images for their platform.
	cfg.OS, cfg.Architecture = "linux", runtime.GOARCH
	cfg.Config = v1.Config{Cmd: []string{"sh"}, Env: []string{"PATH=/bin"}}
	if img, err = mutate.ConfigFile(img, cfg); err != nil {
		t.Fatal(err)
	}
	tag, err := name.NewTag(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := tarball.WriteToFile(path, tag, img); err != nil {
		t.Fatal(err)
	}
}

// containerd is a containerd daemon of the test host's own: its root, state, socket and
// configuration under the host's directory, /run (its shims' sockets, runc's state) and /opt
// (ctr's CNI plugin directory) on tmpfs of the host's mount namespace, and /etc/cni/net.d (ctr's
// CNI configuration directory, which cannot be chosen) bound over by the test's.
type containerd struct {
	t      *testing.T
	h      *testenv.Host
	dir    string
	cgroup string
}

func newContainerd(t *testing.T, h *testenv.Host, cniDir string) *containerd {
	t.Helper()
	for _, tool := range []string{"containerd", "ctr", "containerd-shim-runc-v2", "runc", "busybox"} {
		if _, err := os.Stat("/usr/bin/" + tool); err != nil {
			mustLookPath(t, tool)
		}
	}
	if st, err := os.Stat("/etc/cni/net.d"); err != nil || !st.IsDir() {
		t.Fatalf("ctr reads CNI configurations from /etc/cni/net.d only, which this machine lacks (Debian's podman package makes it): %v", err)
	}
	c := &containerd{t: t, h: h, dir: filepath.Join(h.Dir, "containerd"), cgroup: "/" + filepath.Base(h.Dir) + "-ctr"}
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	conf := `version = 2
root = "` + c.dir + `/root"
state = "` + c.dir + `/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.overlayfs"]
[grpc]
  address = "` + c.dir + `/containerd.sock"
[ttrpc]
  address = "` + c.dir + `/containerd.sock.ttrpc"
`
	if err := os.WriteFile(filepath.Join(c.dir, "config.toml"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	h.MustRun("sh", "-c", "mount -t tmpfs tmpfs /run && mount -t tmpfs tmpfs /opt && mkdir -p /opt/cni && ln -s "+
		filepath.Join(cniDir, "bin")+" /opt/cni/bin && mount --bind "+filepath.Join(cniDir, "net.d")+" /etc/cni/net.d")
	d := h.Cmd("containerd", "--config", filepath.Join(c.dir, "config.toml"))
	log, err := os.Create(filepath.Join(c.dir, "containerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	d.Stdout, d.Stderr = log, log
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, id := range strings.Fields(c.mustRunQuiet("task", "ls", "-q")) {
			c.run("task", "kill", "-s", "SIGKILL", id)
			c.run("task", "rm", "-f", id)
		}
		for _, id := range strings.Fields(c.mustRunQuiet("container", "ls", "-q")) {
			c.run("container", "rm", id)
		}
		_ = d.Process.Kill()
		_ = d.Wait()
		log.Close()
		if out, err := h.Run("sh", "-c", "umount /etc/cni/net.d; umount -R /opt; umount -R /run"); err != nil {
			t.Errorf("cleanup: unmounting containerd's directories: %v\n%s", err, out)
		}
		if out, err := h.Run("sh", "-c", "for d in /sys/fs/cgroup"+c.cgroup+" /sys/fs/cgroup/*"+c.cgroup+"; do test ! -d $d || find $d -depth -type d -exec rmdir {} +; done"); err != nil {
			t.Errorf("cleanup: removing containerd's cgroups under %s: %v\n%s", c.cgroup, err, out)
		}
		if t.Failed() {
			data, _ := os.ReadFile(filepath.Join(c.dir, "containerd.log"))
			t.Logf("containerd log:\n%s", data)
		}
	})
	waitFor(t, "containerd's socket", func() bool {
		_, err := c.run("version")
		return err == nil
	})
	return c
}

// run runs `ctr ARGS...` against the test's containerd, in namespace cnettest.
func (c *containerd) run(args ...string) (string, error) {
	full := append([]string{"--address", filepath.Join(c.dir, "containerd.sock"), "--namespace", "cnettest"}, args...)
	return c.h.RunTimeout(ctrCallTimeout, "ctr", full...)
}

func (c *containerd) mustRun(args ...string) string {
	c.t.Helper()
	out, err := c.run(args...)
	if err != nil {
		c.t.Fatalf("ctr %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(out)
}

// mustRunQuiet is run for cleanup listings: an error is an empty listing.
func (c *containerd) mustRunQuiet(args ...string) string {
	out, err := c.run(args...)
	if err != nil {
		return ""
	}
	return out
}

// TestCNIContainerd: containerd's `ctr run --cni` puts a container on a cnet network through
// cnet's plugin (ctr knows only /etc/cni/net.d and /opt/cni/bin, given here by mounts of the
// test host's own): it gets its address from cnet, reaches a cnet container by address and
// resolves it through cnet's resolver, and is reached by its name (ctr passes no name, so the
// runtime's container ID, NAMESPACE-ID). Once its task is gone the attachment goes and its
// address is free.
func TestCNIContainerd(t *testing.T) {
	h := testenv.NewHost(t)
	h.MustCLI("network", "create", "--subnet", "10.81.0.0/24", "ctrnet")
	runSleeper(t, h, "c1", "--network", "ctrnet")
	c := newContainerd(t, h, installCNIPlugin(t, h, "ctrnet"))
	image := filepath.Join(h.Dir, "busybox.tar")
	busyboxImageTar(t, image, "cnet.test/busybox:latest")
	c.mustRun("image", "import", "--snapshotter", "native", image)

	// --cpu-shares 0: ctr's default (1024) needs the cpu controller in cgroup v2, which a
	// machine with a hybrid hierarchy leaves out of it.
	c.mustRun("run", "-d", "--cni", "--snapshotter", "native", "--cgroup", c.cgroup+"/ctr1", "--cpu-shares", "0", "cnet.test/busybox:latest", "ctr1", "sleep", "3600")
	var ctrIP string
	for id, e := range inspectNetwork(t, h, "ctrnet").Containers {
		if id == "cnettest-ctr1" && e.Name == "cnettest-ctr1" {
			ctrIP = strings.SplitN(e.IPv4Address, "/", 2)[0]
		}
	}
	if !strings.HasPrefix(ctrIP, "10.81.0.") {
		t.Fatalf("inspect ctrnet does not list the containerd container as cnettest-ctr1: %+v", inspectNetwork(t, h, "ctrnet").Containers)
	}
	if out := c.mustRun("task", "exec", "--exec-id", "ip", "ctr1", "ip", "-o", "-4", "addr", "show", "eth0"); !strings.Contains(out, ctrIP+"/24") {
		t.Errorf("the containerd container's eth0 lacks its address %s: %s", ctrIP, out)
	}
	c1IP := ipOn(t, h, "c1", "ctrnet")
	if out, err := c.run("task", "exec", "--exec-id", "ping", "ctr1", "ping", "-c1", "-W2", c1IP); err != nil {
		t.Errorf("the containerd container cannot ping c1: %v\n%s", err, out)
	}
	// ctr writes no resolv.conf: the resolver is asked by address, as the CNI result names it.
	if out, err := c.run("task", "exec", "--exec-id", "dns", "ctr1", "nslookup", "c1", "127.0.0.11"); err != nil || !strings.Contains(out, c1IP) {
		t.Errorf("the containerd container cannot resolve c1 through cnet's resolver: %v\n%s", err, out)
	}
	execPing(t, h, "c1", "cnettest-ctr1")

	c.mustRun("task", "kill", "-s", "SIGKILL", "ctr1")
	waitFor(t, "the containerd task to stop", func() bool {
		out, _ := c.run("task", "ls")
		return !strings.Contains(out, "RUNNING")
	})
	// containerd 1.6's ctr sends no DEL for a detached container (1.7 does, with the namespace
	// empty, at task rm): cnet sees that the namespace's last process is gone and removes the
	// attachment itself.
	c.mustRun("task", "rm", "ctr1")
	c.mustRun("container", "rm", "ctr1")
	waitFor(t, "the containerd container's attachment to go", func() bool {
		return len(inspectNetwork(t, h, "ctrnet").Containers) == 1
	})
	// The address is free: the next container on the network may get it.
	runSleeper(t, h, "c2", "--network", "ctrnet", "--ip", ctrIP)
}
