package image

import (
	"archive/tar"
	"bytes"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

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
	removed, _, err := s.Prune(nil)
	if err != nil || len(removed) != 1 || removed[0].Deleted != dangling {
		t.Fatalf("Prune: %+v, %v; want the dangling %s only", removed, err, dangling)
	}
	if list, _ := s.List(); len(list) != 1 || list[0].ID != tagged {
		t.Errorf("after prune: %+v", list)
	}
}
