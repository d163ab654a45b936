package integration

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/cnet-dev/cnet/internal/testenv"
)

// TestImages: a `docker save` archive written with go-containerregistry from busybox-static is
// loaded, listed, inspected, tagged, saved and removed with Docker's commands and output, and
// what save wrote loads back as the same image; the docker CLI lists it too; an import of a
// root filesystem tar is dangling and pruned; a truncated archive is refused and leaves nothing.
func TestImages(t *testing.T) {
	h := testenv.NewHost(t)
	archive := filepath.Join(h.Dir, "busybox.tar")
	busyboxImageTar(t, archive, "cnet.test/busybox:latest")

	if out := h.MustCLI("load", "-i", archive); out != "Loaded image: cnet.test/busybox:latest\n" {
		t.Errorf("load said %q", out)
	}
	id := strings.TrimSpace(h.MustCLI("image", "inspect", "-f", "{{.Id}}", "cnet.test/busybox"))
	if !strings.HasPrefix(id, "sha256:") || len(id) != 71 {
		t.Fatalf("image inspect .Id = %q", id)
	}
	if got := strings.TrimSpace(h.MustCLI("image", "inspect", "-f", "{{.Config.Cmd}} {{.Os}}", id[7:19])); got != "[sh] linux" {
		t.Errorf("image inspect by short ID: %q", got)
	}
	h.MustCLI("tag", "cnet.test/busybox", "bb:1")
	lines := strings.Split(strings.TrimSpace(h.MustCLI("images")), "\n")
	if len(lines) != 3 || strings.Join(strings.Fields(lines[0]), " ") != "REPOSITORY TAG IMAGE ID CREATED SIZE" ||
		!strings.HasPrefix(strings.Join(strings.Fields(lines[1]), " "), "bb 1 "+id[7:19]) ||
		!strings.HasPrefix(strings.Join(strings.Fields(lines[2]), " "), "cnet.test/busybox latest "+id[7:19]) {
		t.Errorf("images:\n%s", strings.Join(lines, "\n"))
	}
	if _, err := os.Stat("/usr/bin/docker"); err == nil {
		cmd := h.Cmd("env", "DOCKER_HOST=unix://"+h.Socket, "DOCKER_CONFIG="+filepath.Join(h.Dir, "dockercfg"), "docker", "images", "--format", "{{.Repository}}:{{.Tag}}")
		// The docker CLI orders the references of one image as it likes.
		if out, err := cmd.CombinedOutput(); err != nil || !sameLines(string(out), "bb:1\ncnet.test/busybox:latest") {
			t.Errorf("docker images against cnet's socket: %v\n%s", err, out)
		}
	}
	// save writes what load reads back: the same image.
	savedTar := filepath.Join(h.Dir, "saved.tar")
	h.MustCLI("save", "-o", savedTar, "bb:1")
	// import makes an image of one layer from a root filesystem tar; untagged, it is dangling
	// and image prune removes it.
	rootfs := filepath.Join(h.Dir, "rootfs.tar")
	h.MustRun("sh", "-c", "mkdir -p "+h.Dir+"/rfs/bin && cp "+mustLookPath(t, "busybox")+" "+h.Dir+"/rfs/bin/ && tar -C "+h.Dir+"/rfs -cf "+rootfs+" .")
	imported := strings.TrimSpace(h.MustCLI("import", rootfs))
	if !strings.HasPrefix(imported, "sha256:") {
		t.Fatalf("import printed %q, want the image ID", imported)
	}
	if out := h.MustCLI("image", "prune", "-f"); !strings.Contains(out, "deleted: "+imported) {
		t.Errorf("image prune -f did not delete the dangling import:\n%s", out)
	}
	if _, stderr, code := h.CLI("rmi", id[7:19]); code == 0 || !strings.Contains(stderr, "must be forced") {
		t.Errorf("rmi by ID of an image with two references: exit %d, %q", code, stderr)
	}
	if out := h.MustCLI("rmi", "bb:1"); out != "Untagged: bb:1\n" {
		t.Errorf("rmi bb:1 said %q", out)
	}
	if out := h.MustCLI("rmi", "cnet.test/busybox"); out != "Untagged: cnet.test/busybox:latest\nDeleted: "+id+"\n" {
		t.Errorf("rmi cnet.test/busybox said %q", out)
	}
	if out := h.MustCLI("images", "-q"); out != "" {
		t.Errorf("images -q after rmi: %q", out)
	}
	if out := h.MustCLI("load", "-i", savedTar); out != "Loaded image: bb:1\n" {
		t.Errorf("loading what save wrote said %q", out)
	}
	if got := strings.TrimSpace(h.MustCLI("image", "inspect", "-f", "{{.Id}}", "bb:1")); got != id {
		t.Errorf("save then load changed the image: %s, want %s", got, id)
	}
	h.MustCLI("rmi", "bb:1")

	data, err := os.ReadFile(archive)
	if err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(h.Dir, "truncated.tar")
	if err := os.WriteFile(truncated, data[:len(data)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	if _, stderr, code := h.CLI("load", "-i", truncated); code == 0 || stderr == "" {
		t.Errorf("a truncated archive loaded: exit %d, %q", code, stderr)
	}
	if out := h.MustCLI("images", "-q"); out != "" {
		t.Errorf("a refused load left images: %q", out)
	}
	blobs, _ := filepath.Glob(filepath.Join(h.Dir, "data", "image", "layout", "blobs", "sha256", "*"))
	if len(blobs) != 0 {
		t.Errorf("a refused load left %d blobs", len(blobs))
	}
}

// sameLines reports whether a and b hold the same lines in any order.
func sameLines(a, b string) bool {
	x, y := strings.Fields(a), strings.Fields(b)
	sort.Strings(x)
	sort.Strings(y)
	return strings.Join(x, "\n") == strings.Join(y, "\n")
}
