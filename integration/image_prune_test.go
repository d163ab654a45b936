package integration

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/cnet-dev/cnet/internal/testenv"
)

// TestOCILayoutLoadAndPrune: an OCI image layout archive (what Docker 25's save, skopeo and
// buildah write) loads with `cnet load` under containerd's name annotation and runs; `image
// prune -a` removes every image no container uses, untagging each reference first, and keeps
// the one a container uses; its label and until filters select, and an unknown filter is
// refused without removing anything.
func TestOCILayoutLoadAndPrune(t *testing.T) {
	h := testenv.NewHost(t)
	archive := filepath.Join(h.Dir, "busybox.tar")
	busyboxImageTar(t, archive, "cnet.test/busybox:latest")
	h.MustCLI("load", "-i", archive)

	// The same layer under another config (a label), written as an OCI layout and tarred.
	img, err := tarball.ImageFromPath(archive, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg.Config.Labels = map[string]string{"cnet.test": "oci"}
	cfg.Created = v1.Time{Time: time.Now()}
	if img, err = mutate.ConfigFile(img, cfg); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(h.Dir, "oci")
	lp, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendImage(img, layout.WithAnnotations(map[string]string{
		"io.containerd.image.name": "oci.test/bb:2", "org.opencontainers.image.ref.name": "2"})); err != nil {
		t.Fatal(err)
	}
	ociTar := filepath.Join(h.Dir, "oci.tar")
	h.MustRun("tar", "-C", dir, "-cf", ociTar, ".")
	if out := h.MustCLI("load", "-i", ociTar); out != "Loaded image: oci.test/bb:2\n" {
		t.Errorf("load of an OCI layout said %q", out)
	}
	if out := h.MustCLI("run", "--rm", "oci.test/bb:2", "cat", "/www/index.html"); out != "served by the busybox image\n" {
		t.Errorf("a container of the OCI image printed %q", out)
	}
	ociID := strings.TrimSpace(h.MustCLI("image", "inspect", "-f", "{{.Id}}", "oci.test/bb:2"))
	bbID := strings.TrimSpace(h.MustCLI("image", "inspect", "-f", "{{.Id}}", "cnet.test/busybox"))
	h.MustCLI("tag", "oci.test/bb:2", "oci.test/bb:3")

	if _, stderr, code := h.CLI("image", "prune", "-a", "-f", "--filter", "color=red"); code == 0 || !strings.Contains(stderr, "invalid filter 'color'") {
		t.Errorf("prune with an unknown filter: exit %d, %q", code, stderr)
	}
	// The OCI image was made now (not before an hour ago), and has no such label value; nothing
	// dangles, so prune without -a removes nothing either.
	for _, args := range [][]string{{"-a", "--filter", "until=1h", "--filter", "label=cnet.test"}, {"-a", "--filter", "label=cnet.test=other"}, {}} {
		if out := h.MustCLI(append([]string{"image", "prune", "-f"}, args...)...); out != "Total reclaimed space: 0B\n" {
			t.Errorf("prune %v removed images:\n%s", args, out)
		}
	}
	h.MustCLI("run", "-d", "--name", "user", "cnet.test/busybox", "sleep", "600")
	out := h.MustCLI("image", "prune", "-a", "-f", "--filter", "label=cnet.test")
	want := "Deleted Images:\nuntagged: oci.test/bb:2\nuntagged: oci.test/bb:3\ndeleted: " + ociID + "\n\nTotal reclaimed space: "
	if !strings.HasPrefix(out, want) {
		t.Errorf("image prune -a --filter label=cnet.test said\n%s\nwant\n%s…", out, want)
	}
	// Plain -a keeps the image a container uses.
	if out := h.MustCLI("image", "prune", "-a", "-f"); out != "Total reclaimed space: 0B\n" {
		t.Errorf("prune -a with the busybox image in use:\n%s", out)
	}
	if got := strings.TrimSpace(h.MustCLI("images", "-q", "--no-trunc")); got != bbID {
		t.Errorf("images after prune -a: %q, want only %s", got, bbID)
	}
	h.MustCLI("rm", "-f", "user")
	if out := h.MustCLI("image", "prune", "-a", "-f"); !strings.Contains(out, "untagged: cnet.test/busybox:latest\ndeleted: "+bbID) {
		t.Errorf("prune -a once no container uses it:\n%s", out)
	}
	if out := h.MustCLI("images", "-q"); out != "" {
		t.Errorf("images after the last prune: %q", out)
	}
}
