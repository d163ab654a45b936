package integration

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cnet-dev/cnet/internal/api"
	"github.com/cnet-dev/cnet/internal/testenv"
)

// createFromImage creates (and starts, with start) container name from image through the API,
// as the docker CLI's run does.
func createFromImage(t *testing.T, h *testenv.Host, name, image string, cmd []string, start bool) {
	t.Helper()
	err := h.Call(func(ctx context.Context) error {
		req := api.ContainerCreateRequest{ContainerConfig: api.ContainerConfig{Image: image, Cmd: cmd}}
		if _, err := h.API().ContainerCreate(ctx, name, req); err != nil {
			return err
		}
		if start {
			return h.API().ContainerStart(ctx, name)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("creating %s from %s: %v", name, image, err)
	}
}

// TestRunFromImage: a container created with an image runs on an overlay of its unpacked
// layers (the image's files, not the host's) with the image's config applied; two containers
// of one image share its unpacked layer and not their writes; an image in use is not removed;
// removing the containers and the image leaves no root, writes or unpacked layer behind.
func TestRunFromImage(t *testing.T) {
	h := testenv.NewHost(t)
	archive := filepath.Join(h.Dir, "busybox.tar")
	busyboxImageTar(t, archive, "cnet.test/busybox:latest")
	h.MustCLI("load", "-i", archive)

	createFromImage(t, h, "web", "cnet.test/busybox", []string{"httpd", "-f", "-p", "80", "-h", "/www"}, true)
	ip := strings.TrimSpace(h.MustCLI("inspect", "-f", "{{.NetworkSettings.IPAddress}}", "web"))
	waitFor(t, "the image's httpd serving the image's /www", func() bool {
		out, err := httpGet(h, "", ip, "80")
		return err == nil && strings.Contains(out, "served by the busybox image")
	})
	// cnet create makes a container from the image without starting it; start runs it.
	made := strings.TrimSpace(h.MustCLI("create", "--name", "made", "cnet.test/busybox", "sleep", "600"))
	if got := h.MustCLI("ps", "-a", "--filter", "name=^made$", "--format", "{{.ID}} {{.State}}"); got != made[:12]+" created\n" {
		t.Errorf("after create, ps -a shows %q, want %s created", got, made[:12])
	}
	h.MustCLI("start", "made")
	if got := h.MustCLI("ps", "--filter", "name=^made$", "--format", "{{.State}}"); got != "running\n" {
		t.Errorf("after start, the created container is %q", got)
	}
	h.MustCLI("rm", "-f", "made")
	// The image's files, not the host's: its /etc/passwd is one line.
	if out := h.MustCLI("exec", "web", "cat", "/etc/passwd"); out != "root:x:0:0:root:/:/bin/sh\n" {
		t.Errorf("/etc/passwd in the container is not the image's: %q", out)
	}
	if got := strings.TrimSpace(h.MustCLI("ps", "--format", "{{.Image}} {{.Command}}")); !strings.HasPrefix(got, `cnet.test/busybox "httpd`) {
		t.Errorf("ps shows %q", got)
	}

	// Writes stay in the container that made them.
	createFromImage(t, h, "other", "cnet.test/busybox", []string{"sleep", "3600"}, true)
	h.MustCLI("exec", "web", "sh", "-c", "echo mine > /tmp/x")
	if out, _, code := h.CLI("exec", "other", "cat", "/tmp/x"); code == 0 {
		t.Errorf("a write of web's shows in other: %q", out)
	}
	if layers, _ := os.ReadDir(filepath.Join(h.Dir, "data", "image", "layers")); len(layers) != 1 {
		t.Errorf("%d unpacked layers for two containers of a one-layer image, want 1", len(layers))
	}

	// No command: the image's (Cmd ["sh"]), with its Env.
	createFromImage(t, h, "idle", "cnet.test/busybox", nil, false)
	if got := strings.TrimSpace(h.MustCLI("inspect", "-f", "{{json .Config.Cmd}} {{json .Config.Env}}", "idle")); got != `["sh"] ["PATH=/bin"]` {
		t.Errorf("a container with no command has %s, want the image's Cmd and Env", got)
	}
	// --user: a uid:gid the image's files need not name, and a name they must.
	if out := h.MustCLI("run", "--rm", "--user", "1000:1001", "cnet.test/busybox", "sh", "-c", "cat /proc/self/status; echo HOME=$HOME"); !strings.Contains(out, "Uid:\t1000\t") || !strings.Contains(out, "Gid:\t1001\t") {
		t.Errorf("run --user 1000:1001 ran as:\n%s", out)
	}
	if out := h.MustCLI("run", "--rm", "--user", "root", "cnet.test/busybox", "sh", "-c", "echo HOME=$HOME"); out != "HOME=/\n" {
		t.Errorf("run --user root: %q, want root's home from the image's passwd (/)", out)
	}
	// exec runs as the container's user unless -u says otherwise, as in Docker.
	h.MustCLI("run", "-d", "--name", "asuser", "--user", "1000", "cnet.test/busybox", "sleep", "3600")
	if out := h.MustCLI("exec", "asuser", "cat", "/proc/self/status"); !strings.Contains(out, "Uid:\t1000\t") {
		t.Errorf("exec in a --user 1000 container did not run as 1000:\n%s", out)
	}
	if out := h.MustCLI("exec", "-u", "0", "asuser", "cat", "/proc/self/status"); !strings.Contains(out, "Uid:\t0\t") {
		t.Errorf("exec -u 0 did not run as root:\n%s", out)
	}
	before := h.MustCLI("ps", "-aq")
	if _, stderr, code := h.CLI("run", "--rm", "--user", "nobody", "cnet.test/busybox", "true"); code == 0 || !strings.Contains(stderr, "unable to find user nobody") {
		t.Errorf("run --user nobody: exit %d, %q", code, stderr)
	}
	if after := h.MustCLI("ps", "-aq"); !sameLines(after, before) {
		t.Errorf("run --rm that failed to start left its container: before %q, after %q", before, after)
	}
	// An unknown image is not found, as in Docker.
	err := h.Call(func(ctx context.Context) error {
		_, err := h.API().ContainerCreate(ctx, "nope", api.ContainerCreateRequest{ContainerConfig: api.ContainerConfig{Image: "no/such:image"}})
		return err
	})
	if !isStatus(err, 404) {
		t.Errorf("create from a missing image: %v, want 404", err)
	}

	if _, stderr, code := h.CLI("rmi", "cnet.test/busybox"); code == 0 || !strings.Contains(stderr, "being used by a container") {
		t.Errorf("rmi of an image containers run from: exit %d, %q", code, stderr)
	}
	ids := strings.Fields(h.MustCLI("ps", "-aq", "--no-trunc"))
	h.MustCLI(append([]string{"rm", "-f"}, ids...)...)
	for _, id := range ids {
		if _, err := os.Stat(filepath.Join(h.Dir, "data", "containers", id)); err == nil {
			t.Errorf("container %s's root and writes are still on disk after rm", id[:12])
		}
	}
	if mounts := h.MustRun("cat", "/proc/self/mountinfo"); strings.Contains(mounts, filepath.Join(h.Dir, "data", "containers")) {
		t.Errorf("a container root is still mounted after rm")
	}
	h.MustCLI("rmi", "cnet.test/busybox")
	if layers, _ := os.ReadDir(filepath.Join(h.Dir, "data", "image", "layers")); len(layers) != 0 {
		t.Errorf("%d unpacked layers left after the image's removal", len(layers))
	}
}

// isStatus reports an API error with the given HTTP status.
func isStatus(err error, status int) bool {
	var se *api.StatusError
	return errors.As(err, &se) && se.Status == status
}

// TestQuickStartImage runs README's one command that makes the busybox image offline, then a
// seed's command as written, from it.
func TestQuickStartImage(t *testing.T) {
	h := testenv.NewHost(t)
	h.MustRun("sh", "-c", readmeImageScript(t, h))
	if out := h.MustCLI("run", "--rm", "busybox", "cat", "/srv/www/index.html"); !strings.Contains(out, "served by web") {
		t.Errorf("run from the README's busybox image printed %q", out)
	}
	h.MustCLI("network", "create", "mybridge")
	if out := h.MustCLI("run", "--rm", "--net", "mybridge", "busybox", "ifconfig", "eth0"); !strings.Contains(out, "inet addr:172.") {
		t.Errorf("seed 001's ifconfig eth0 from the image printed:\n%s", out)
	}
	h.MustCLI("rmi", "busybox")
}
