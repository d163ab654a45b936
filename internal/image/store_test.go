package image

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/cnet-dev/cnet/internal/errdefs"
)

// layerOf is an uncompressed layer holding files (path → content).
func layerOf(t *testing.T, files map[string]string) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for p, c := range files {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: p, Mode: 0o644, Size: int64(len(c))}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(c)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// imageOf is an image of layers with a Cmd, so that two calls with the same cmd are the same image.
func imageOf(t *testing.T, cmd string, layers ...v1.Layer) v1.Image {
	t.Helper()
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg.OS, cfg.Architecture = "linux", "amd64"
	cfg.Config.Cmd = []string{cmd}
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// saved is `docker save` of images by tag.
func saved(t *testing.T, images map[string]v1.Image) []byte {
	t.Helper()
	refs := map[name.Reference]v1.Image{}
	for tag, img := range images {
		ref, err := name.NewTag(tag)
		if err != nil {
			t.Fatal(err)
		}
		refs[ref] = img
	}
	var buf bytes.Buffer
	if err := tarball.MultiRefWrite(refs, &buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func blobCount(t *testing.T, s *Store) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(filepath.Join(s.root, "layout", "blobs"), func(_ string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			n++
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestNormalize(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"busybox", "busybox:latest"},
		{"busybox:1.36", "busybox:1.36"},
		{"docker.io/library/busybox", "busybox:latest"},
		{"docker.io/me/app:v1", "me/app:v1"},
		{"reg.local:5000/app", "reg.local:5000/app:latest"},
		{"cnet.test/busybox:latest", "cnet.test/busybox:latest"},
	} {
		if got, err := Normalize(tt.in); err != nil || got != tt.want {
			t.Errorf("Normalize(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	if _, err := Normalize("UPPER/case"); !errdefs.Is(err, errdefs.KindInvalid) {
		t.Errorf("Normalize of an invalid reference: %v, want invalid", err)
	}
}

// TestStore: load, list, resolve by tag and ID prefix, tag, the rmi rules, shared layers stored
// once, and blobs collected when an image goes.
func TestStore(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	base := layerOf(t, map[string]string{"bin/tool": "tool"})
	a := imageOf(t, "a", base, layerOf(t, map[string]string{"etc/a": "a"}))
	b := imageOf(t, "b", base, layerOf(t, map[string]string{"etc/b": "b"}))
	loaded, err := s.LoadTarball(bytes.NewReader(saved(t, map[string]v1.Image{"cnet.test/a:1": a, "busybox": b})))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(loaded, ",") == "" {
		t.Fatalf("loaded nothing")
	}
	// Two images × (manifest, config, own layer) + the shared layer once.
	if n := blobCount(t, s); n != 7 {
		t.Errorf("%d blobs stored, want 7 (the shared layer once)", n)
	}
	list, err := s.List()
	if err != nil || len(list) != 2 {
		t.Fatalf("List: %v, %v", list, err)
	}
	aID, _ := a.ConfigName()
	for _, ref := range []string{"cnet.test/a:1", aID.String(), aID.Hex[:12]} {
		if _, sum, err := s.Resolve(ref); err != nil || sum.ID != aID {
			t.Errorf("Resolve(%q) = %v, %v; want image a", ref, sum.ID, err)
		}
	}
	if _, _, err := s.Resolve("docker.io/library/busybox:latest"); err != nil {
		t.Errorf("busybox by its full name: %v", err)
	}
	if _, _, err := s.Resolve("nope"); !errdefs.Is(err, errdefs.KindNotFound) {
		t.Errorf("Resolve(nope): %v, want not found", err)
	}

	if err := s.Tag("cnet.test/a:1", "a2"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Remove(aID.Hex[:12], false, nil); !errdefs.Is(err, errdefs.KindConflict) {
		t.Errorf("rmi by ID of an image with two tags: %v, want refused", err)
	}
	removed, err := s.Remove("a2", false, nil)
	if err != nil || len(removed) != 1 || removed[0].Untagged != "a2:latest" {
		t.Errorf("rmi a2: %+v, %v; want a2:latest untagged only", removed, err)
	}
	if _, err := s.Remove("cnet.test/a:1", false, func(id v1.Hash) bool { return id == aID }); !errdefs.Is(err, errdefs.KindConflict) {
		t.Errorf("rmi of an image a container uses: %v, want refused", err)
	}
	removed, err = s.Remove("cnet.test/a:1", false, nil)
	if err != nil || len(removed) != 2 || removed[1].Deleted != aID {
		t.Errorf("rmi cnet.test/a:1: %+v, %v; want untagged and deleted", removed, err)
	}
	// b and the shared layer stay.
	if n := blobCount(t, s); n != 4 {
		t.Errorf("%d blobs after removing a, want b's 4", n)
	}
	// Reopening finds the same.
	s2, err := Open(s.root)
	if err != nil {
		t.Fatal(err)
	}
	if list, err := s2.List(); err != nil || len(list) != 1 || list[0].RepoTags[0] != "busybox:latest" {
		t.Errorf("after reopening: %+v, %v", list, err)
	}
}

// TestLoadRefused: what is not a whole, true archive is refused and stores nothing.
func TestLoadRefused(t *testing.T) {
	good := saved(t, map[string]v1.Image{"x": imageOf(t, "x", layerOf(t, map[string]string{"f": strings.Repeat("payload", 100)}))})
	corrupt := corruptLayer(t, good, false) // a layer's content no longer matches its digest
	missing := corruptLayer(t, good, true)  // the manifest names a layer the archive lacks
	hostile := saved(t, map[string]v1.Image{"x": imageOf(t, "x",
		layerOf(t, map[string]string{"etc/fine": "fine"}), layerOf(t, map[string]string{"../escape": "x"}))})
	for _, tt := range []struct {
		name string
		data []byte
	}{
		{"not a tar", []byte("hello")},
		{"empty", nil},
		{"truncated", good[:len(good)/2]},
		{"digest mismatch", corrupt},
		{"missing layer", missing},
		{"a layer escaping its root", hostile},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Open(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			_, err = s.LoadTarball(bytes.NewReader(tt.data))
			if err == nil {
				t.Fatal("loaded")
			}
			if tt.name == "a layer escaping its root" && !strings.Contains(err.Error(), `"../escape"`) {
				t.Errorf("the refusal does not name the entry: %v", err)
			}
			if n := blobCount(t, s); n != 0 {
				t.Errorf("%d blobs left behind", n)
			}
			if list, _ := s.List(); len(list) != 0 {
				t.Errorf("images left behind: %+v", list)
			}
			if left, _ := os.ReadDir(filepath.Join(s.root, "layers")); len(left) != 0 {
				t.Errorf("unpacked layers left behind: %v", left)
			}
		})
	}
}

// corruptLayer rewrites a `docker save` archive with one byte of its layer flipped, or with the
// layer left out (drop).
func corruptLayer(t *testing.T, archive []byte, drop bool) []byte {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(archive))
	var out bytes.Buffer
	tw := tar.NewWriter(&out)
	done := false
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if !done && h.Name != "manifest.json" && !strings.HasSuffix(h.Name, ".json") && len(data) > 16 {
			data[len(data)/2] ^= 0xff
			done = true
			if drop {
				continue
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if !done {
		t.Fatal("no layer in the archive to corrupt")
	}
	return out.Bytes()
}

// TestOpenCleansCrashLeftovers: what a daemon killed in the middle of a load, import, pull or
// unpack leaves is gone at the next Open, and an image's unpacked layer stays.
func TestOpenCleansCrashLeftovers(t *testing.T) {
	root := t.TempDir()
	s, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	img := imageOf(t, "a", layerOf(t, map[string]string{"etc/a": "a"}))
	if _, err := s.LoadTarball(bytes.NewReader(saved(t, map[string]v1.Image{"cnet.test/a:1": img}))); err != nil {
		t.Fatal(err)
	}
	id, _ := img.ConfigName()
	kept, err := s.Layers(id.String())
	if err != nil || len(kept) != 1 {
		t.Fatalf("Layers: %v %v", kept, err)
	}
	left := []string{"oci-123/blobs", "pull-9/x", "load-1.tar", "import-2.tar", "layers/.unpack-77/etc", "layers/" + strings.Repeat("e", 64)}
	for _, p := range left {
		if err := os.MkdirAll(filepath.Join(root, p), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Open(root); err != nil {
		t.Fatal(err)
	}
	for _, p := range left {
		if _, err := os.Stat(filepath.Join(root, strings.Split(p, "/")[0])); err == nil && !strings.HasPrefix(p, "layers/") {
			t.Errorf("%s is still there", p)
		}
		if _, err := os.Stat(filepath.Join(root, p)); err == nil {
			t.Errorf("%s is still there", p)
		}
	}
	if _, err := os.Stat(kept[0]); err != nil {
		t.Errorf("the image's unpacked layer went: %v", err)
	}
}
