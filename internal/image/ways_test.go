package image

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"

	"github.com/cnet-dev/cnet/internal/errdefs"
)

// TestSaveLoadRoundTrip: what Save writes, another store loads as the same image.
func TestSaveLoadRoundTrip(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	img := imageOf(t, "x", layerOf(t, map[string]string{"etc/x": "x"}))
	if _, err := s.LoadTarball(bytes.NewReader(saved(t, map[string]v1.Image{"x:1": img}))); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := s.Save(&buf, []string{"x:1"}); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	loaded, err := s2.LoadTarball(&buf)
	if err != nil || len(loaded) != 1 || loaded[0] != "x:1" {
		t.Fatalf("loading what Save wrote: %v, %v", loaded, err)
	}
	want, _ := img.ConfigName()
	if _, sum, err := s2.Resolve("x:1"); err != nil || sum.ID != want {
		t.Errorf("the round trip changed the image: %v, %v; want %s", sum.ID, err, want)
	}
	if err := s.Save(&buf, []string{"nope"}); !errdefs.Is(err, errdefs.KindNotFound) {
		t.Errorf("Save of a missing image: %v", err)
	}
}

// TestImportAndPrune: a root filesystem tar becomes an image of one layer; an untagged import
// is dangling, and prune removes it and only it.
func TestImportAndPrune(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var rootfs bytes.Buffer
	tw := tar.NewWriter(&rootfs)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "hello", Mode: 0o644, Size: 2}); err != nil {
		t.Fatal(err)
	}
	tw.Write([]byte("hi"))
	tw.Close()
	tagged, err := s.Import(bytes.NewReader(rootfs.Bytes()), "imported:v1")
	if err != nil {
		t.Fatal(err)
	}
	img, sum, err := s.Resolve("imported:v1")
	if err != nil || sum.ID != tagged {
		t.Fatalf("Resolve(imported:v1): %v, %v", sum.ID, err)
	}
	if layers, _ := img.Layers(); len(layers) != 1 {
		t.Errorf("an import has %d layers, want 1", len(layers))
	}
	if _, err := s.Import(bytes.NewReader([]byte("not a tar at all")), "bad"); err == nil {
		t.Errorf("imported something that is not a tar")
	}
	rootfs2 := bytes.Clone(rootfs.Bytes())
	dangling, err := s.Import(bytes.NewReader(append(rootfs2, make([]byte, 1024)...)), "")
	if err != nil {
		t.Fatal(err)
	}
	removed, _, err := s.Prune(func(s Summary) bool { return len(s.RepoTags) == 0 })
	if err != nil || len(removed) != 1 || removed[0].Deleted != dangling {
		t.Fatalf("Prune: %+v, %v; want the dangling %s only", removed, err, dangling)
	}
	if list, _ := s.List(); len(list) != 1 || list[0].ID != tagged {
		t.Errorf("after prune: %+v", list)
	}
}

// tarDir is the tar of a directory's regular files and directories, as an archive tool writes it.
func tarDir(t *testing.T, dir string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		info, err := d.Info()
		if err != nil {
			return err
		}
		h, err := tar.FileInfoHeader(info, "")
		if err != nil {
			return err
		}
		h.Name = rel
		if d.IsDir() {
			h.Name += "/"
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if !d.IsDir() {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			_, err = tw.Write(data)
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	tw.Close()
	return buf.Bytes()
}

// TestLoadOCILayout: an OCI image layout archive loads under the full name Docker and
// containerd annotate; one whose ref.name is only a tag loads untagged; a layout with a
// corrupt blob is refused and stores nothing.
func TestLoadOCILayout(t *testing.T) {
	img := imageOf(t, "oci", layerOf(t, map[string]string{"etc/oci": "x"}))
	want, _ := img.ConfigName()
	for _, tt := range []struct {
		name        string
		annotations map[string]string
		ref         string
	}{
		{"docker 25", map[string]string{containerdNameAnnotation: "docker.io/library/ocibox:1", RefAnnotation: "1"}, "ocibox:1"},
		{"tag only", map[string]string{RefAnnotation: "latest"}, want.String()},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			lp, err := layout.Write(dir, empty.Index)
			if err != nil {
				t.Fatal(err)
			}
			if err := lp.AppendImage(img, layout.WithAnnotations(tt.annotations)); err != nil {
				t.Fatal(err)
			}
			s, err := Open(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			loaded, err := s.LoadTarball(bytes.NewReader(tarDir(t, dir)))
			if err != nil || len(loaded) != 1 || loaded[0] != tt.ref {
				t.Fatalf("loaded %v, %v; want %s", loaded, err, tt.ref)
			}
			if _, sum, err := s.Resolve(tt.ref); err != nil || sum.ID != want {
				t.Errorf("Resolve(%s): %v, %v", tt.ref, sum.ID, err)
			}
		})
	}
	// A blob changed after the index was written.
	dir := t.TempDir()
	lp, _ := layout.Write(dir, empty.Index)
	if err := lp.AppendImage(img, layout.WithAnnotations(map[string]string{containerdNameAnnotation: "bad:1"})); err != nil {
		t.Fatal(err)
	}
	layers, _ := img.Layers()
	d, _ := layers[0].Digest()
	if err := os.WriteFile(filepath.Join(dir, "blobs", "sha256", d.Hex), []byte("not the layer"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, _ := Open(t.TempDir())
	if _, err := s.LoadTarball(bytes.NewReader(tarDir(t, dir))); err == nil {
		t.Fatal("a layout with a corrupt blob loaded")
	}
	if n := blobCount(t, s); n != 0 {
		t.Errorf("%d blobs left behind", n)
	}
}
