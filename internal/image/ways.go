package image

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/cnet-dev/cnet/internal/errdefs"
)

// Ways out of and into the store besides a `docker save` archive: save (the same archive),
// import (a root filesystem tar, as `docker import`), and prune.

// Save writes the images named by refs as one `docker save` archive to w. An image named by ID
// is saved under its references; one with none cannot be named in the archive and is refused.
func (s *Store) Save(w io.Writer, refs []string) error {
	s.mu.Lock()
	images := map[name.Reference]v1.Image{}
	for _, ref := range refs {
		img, sum, err := s.resolve(ref)
		if err != nil {
			s.mu.Unlock()
			return err
		}
		tags := sum.RepoTags
		if norm, err := Normalize(ref); err == nil && contains(tags, norm) {
			tags = []string{norm}
		}
		if len(tags) == 0 {
			s.mu.Unlock()
			return errdefs.Invalid("image %s has no reference to save it under: tag it first", ref)
		}
		for _, t := range tags {
			tag, err := name.NewTag(t)
			if err != nil {
				s.mu.Unlock()
				return errdefs.Invalid("invalid reference %q: %v", t, err)
			}
			images[tag] = img
		}
	}
	s.mu.Unlock()
	// Blobs are content-addressed and never rewritten, so writing outside the lock is safe;
	// a removal meanwhile makes the write fail, not corrupt.
	if err := tarball.MultiRefWrite(images, w); err != nil {
		return fmt.Errorf("writing the archive: %w", err)
	}
	return nil
}

// Import makes an image of one layer from a root filesystem tar (plain or gzip), as `docker
// import` does, stores it under ref (none: untagged) and returns its ID.
func (s *Store) Import(r io.Reader, ref string) (v1.Hash, error) {
	var refs []string
	if ref != "" {
		norm, err := Normalize(ref)
		if err != nil {
			return v1.Hash{}, err
		}
		refs = []string{norm}
	}
	tmp, err := os.CreateTemp(s.root, "import-*.tar")
	if err != nil {
		return v1.Hash{}, fmt.Errorf("receiving the root filesystem: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = io.Copy(tmp, r)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return v1.Hash{}, fmt.Errorf("receiving the root filesystem: %w", err)
	}
	layer, err := tarball.LayerFromFile(tmp.Name())
	if err != nil {
		return v1.Hash{}, errdefs.Invalid("not a root filesystem tar: %v", err)
	}
	if err := checkTar(layer); err != nil {
		return v1.Hash{}, errdefs.Invalid("not a root filesystem tar: %v", err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return v1.Hash{}, errdefs.Invalid("not a root filesystem tar: %v", err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return v1.Hash{}, err
	}
	cfg.OS, cfg.Architecture = "linux", runtime.GOARCH
	cfg.Created = v1.Time{Time: time.Now().UTC()}
	if img, err = mutate.ConfigFile(img, cfg); err != nil {
		return v1.Hash{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// cnet computed every digest of this image itself.
	if err := s.add(img, refs, false); err != nil {
		return v1.Hash{}, err
	}
	return img.ConfigName()
}

// Prune removes the images that match says should go (the caller applies Docker's rules: dangling
// or, with -a, every image no container uses, and the filters), with all their references, and
// returns what went (each reference untagged, then the image deleted) and the bytes freed.
func (s *Store) Prune(match func(Summary) bool) ([]Removed, int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	all, err := s.list()
	if err != nil {
		return nil, 0, err
	}
	var out []Removed
	var freed int64
	for _, sum := range all {
		if !match(sum) {
			continue
		}
		if err := s.layout.RemoveDescriptors(matchManifest(sum.Manifest)); err != nil {
			return out, freed, s.wrapWrite(err)
		}
		for _, ref := range sum.RepoTags {
			out = append(out, Removed{Untagged: ref})
		}
		out = append(out, Removed{Deleted: sum.ID})
		freed += sum.Size
	}
	return out, freed, errors.Join(s.collect(), s.collectLayers())
}

// checkTar reads a layer's tar through to its end: LayerFromFile takes any bytes as a layer.
func checkTar(l v1.Layer) error {
	rc, err := l.Uncompressed()
	if err != nil {
		return err
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	n := 0
	for {
		_, err := tr.Next()
		if err == io.EOF {
			if n == 0 {
				return errors.New("the archive is empty")
			}
			return nil
		}
		if err != nil {
			return err
		}
		n++
	}
}
