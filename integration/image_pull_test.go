package integration

import (
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/cnet-dev/cnet/internal/testenv"
)

// registryAddr is where the test's registry listens: an address the test adds to the host's lo,
// not 127.0.0.1, which Docker (and go-containerregistry) treat as plain http without being told.
const registryAddr = "10.98.0.1:5000"

// startRegistry runs Debian's docker-registry (the reference registry, distribution 2.8) in h on
// registryAddr, its storage under h's directory; it is killed when the test ends.
func startRegistry(t *testing.T, h *testenv.Host) {
	t.Helper()
	if _, err := exec.LookPath("docker-registry"); err != nil {
		t.Skipf("the pull test needs docker-registry (Debian's package): %v", err)
	}
	h.MustRun("ip", "addr", "add", "10.98.0.1/32", "dev", "lo")
	dir := filepath.Join(h.Dir, "registry")
	conf := "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: " + dir + "\nhttp:\n  addr: " + registryAddr + "\n"
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(h.Dir, "registry.yml"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := h.Cmd("docker-registry", "serve", filepath.Join(h.Dir, "registry.yml"))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Run("pkill", "-f", "docker-registry serve"); _ = cmd.Wait() })
	waitFor(t, "the registry", func() bool {
		_, err := h.Run("busybox", "wget", "-q", "-O", "/dev/null", "http://"+registryAddr+"/v2/")
		return err == nil
	})
}

// inHost is an http.Transport whose connections are made inside h's network namespace (by
// onThreadIn), so the test process reaches the host's own addresses.
func inHost(h *testenv.Host) *http.Transport {
	return &http.Transport{DialContext: func(ctx context.Context, network, addr string) (conn net.Conn, err error) {
		derr := onThreadIn(h.NetNS(), func() error {
			var d net.Dialer
			conn, err = d.DialContext(ctx, network, addr)
			return nil
		})
		if derr != nil {
			return nil, derr
		}
		return conn, err
	}}
}

// TestPull: an image pushed to a real registry in the host is pulled with `cnet pull`: refused
// over https until the daemon names the registry with --insecure-registry, then stored as the
// same image, with Docker's progress lines; a missing repository says so.
func TestPull(t *testing.T) {
	h := testenv.NewHost(t)
	startRegistry(t, h)
	archive := filepath.Join(h.Dir, "busybox.tar")
	busyboxImageTar(t, archive, "cnet.test/busybox:latest")
	img, err := tarball.ImageFromPath(archive, nil)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.NewTag(registryAddr+"/bb:1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := remote.Write(ref, img, remote.WithTransport(inHost(h)), remote.WithContext(ctx)); err != nil {
		t.Fatalf("pushing the test image: %v", err)
	}

	if _, stderr, code := h.CLI("pull", registryAddr+"/bb:1"); code == 0 || !strings.Contains(stderr, "--insecure-registry") {
		t.Errorf("pull from a plain-http registry without --insecure-registry: exit %d, %q", code, stderr)
	}
	h.StopDaemon()
	h.WaitDaemonGone()
	h.SetDaemonArgs(append(h.DaemonArgs(), "--insecure-registry", registryAddr)...)
	h.StartDaemon()
	out := h.MustCLI("pull", registryAddr+"/bb:1")
	if !strings.Contains(out, ": Pull complete") || !strings.Contains(out, "Status: Downloaded newer image for "+registryAddr+"/bb:1") ||
		strings.Contains(out, "Downloading") || strings.Contains(out, "\x1b") {
		t.Errorf("pull printed:\n%s", out)
	}
	want, _ := img.ConfigName()
	if got := strings.TrimSpace(h.MustCLI("image", "inspect", "-f", "{{.Id}}", registryAddr+"/bb:1")); got != want.String() {
		t.Errorf("the pulled image is %s, the pushed one %s", got, want)
	}
	// On a terminal (script(1) gives the CLI one), each layer's line is redrawn in place with
	// Docker's bar, ending full.
	h.MustCLI("rmi", registryAddr+"/bb:1")
	tty, err := h.Run("script", "-qec", h.Bin+" -H unix://"+h.Socket+" pull "+registryAddr+"/bb:1", "/dev/null")
	if err != nil {
		t.Fatalf("pull on a terminal: %v\n%s", err, tty)
	}
	for _, want := range []string{"\x1b[2K\r", ": Downloading [", "[==================================================>]", ": Pull complete\r", "Status: Downloaded newer image"} {
		if !strings.Contains(tty, want) {
			t.Errorf("pull on a terminal printed no %q:\n%q", want, tty)
		}
	}
	// The docker CLI pulls through cnet the same way, reading the same JSON progress; pulled
	// again, the image is the same.
	h.MustCLI("rmi", registryAddr+"/bb:1")
	if out := mustDocker(t, h, "pull", registryAddr+"/bb:1"); !strings.Contains(out, ": Pull complete") ||
		!strings.Contains(out, "Status: Downloaded newer image for "+registryAddr+"/bb:1") {
		t.Errorf("docker pull printed:\n%s", out)
	}
	if out := mustDocker(t, h, "images", "--filter", "reference="+registryAddr+"/*", "--format", "{{.ID}}"); !strings.HasPrefix(want.String(), "sha256:"+strings.TrimSpace(out)) {
		t.Errorf("docker images after docker pull: %q, want %s", out, want)
	}
	if _, stderr, code := h.CLI("pull", registryAddr+"/nothing:here"); code == 0 || !strings.Contains(stderr, "does not exist") {
		t.Errorf("pull of a missing repository: exit %d, %q", code, stderr)
	}
	h.MustCLI("rmi", registryAddr+"/bb:1")
}
