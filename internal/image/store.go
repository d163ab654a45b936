// Package image is cnet's local image store. Images live in one OCI image layout under the data
// root (github.com/google/go-containerregistry's layout package writes and reads it): blobs are
// content-addressed, so two images that share a layer store it once, and index.json lists one
// descriptor per reference, named by the standard org.opencontainers.image.ref.name annotation.
// Layers are unpacked once each, by diff ID, into the form overlayfs reads as a lower layer
// (unpack.go); a container's root is an overlay of them.
//
// Every way in validates an image whole (every digest and size, through go-containerregistry's
// validate package) before its first blob is written, and blobs that end up referenced by no
// descriptor (an interrupted load, a removal) are collected, so a refused or broken image leaves
// nothing behind.
package image

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/match"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/cnet-dev/cnet/internal/errdefs"
)

// RefAnnotation is the OCI annotation that names an image in a layout's index.
const RefAnnotation = "org.opencontainers.image.ref.name"

// Store is the local image store. Safe for concurrent use: one mutex orders changes to the
// index (its lock is a leaf).
type Store struct {
	mu sync.Mutex
	// unpackMu orders unpacking layers (rootfs.go); taken after mu when both are.
	unpackMu sync.Mutex
	root     string
	layout   layout.Path
}

// scratch names what the store's ways in write beside the layout while they work; a crash
// leaves them, and only one daemon opens a store, so Open removes them.
var scratch = []string{"oci-*", "pull-*", "load-*.tar", "import-*.tar"}

// Open opens (or creates) the store under root and collects what a crash may have left: blobs no
// image references, the ways in's scratch files, half-done unpacks and unused unpacked layers.
func Open(root string) (*Store, error) {
	dir := filepath.Join(root, "layout")
	lp, err := layout.FromPath(dir)
	if err != nil {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("creating the image store: %w", err)
		}
		if lp, err = layout.Write(dir, empty.Index); err != nil {
			return nil, fmt.Errorf("creating the image store: %w", err)
		}
	}
	// The layout package leaves blobs/ to its first write; the collector walks it.
	if err := os.MkdirAll(filepath.Join(dir, "blobs", "sha256"), 0o700); err != nil {
		return nil, fmt.Errorf("creating the image store: %w", err)
	}
	s := &Store{root: root, layout: lp}
	var errs []error
	for _, pattern := range scratch {
		left, _ := filepath.Glob(filepath.Join(root, pattern))
		for _, p := range left {
			errs = append(errs, os.RemoveAll(p))
		}
	}
	if err := errors.Join(append(errs, s.collect(), s.collectLayers())...); err != nil {
		return nil, fmt.Errorf("cleaning the image store: %w", err)
	}
	return s, nil
}

// collect removes blobs that no image references. The layout package's GarbageCollect only
// finds them (it knows which blobs its index reaches); they are removed here.
func (s *Store) collect() error {
	unused, err := s.layout.GarbageCollect()
	if err != nil {
		return fmt.Errorf("finding unreferenced image blobs: %w", err)
	}
	for _, h := range unused {
		if err := s.layout.RemoveBlob(h); err != nil {
			return fmt.Errorf("removing unreferenced image blob %s: %w", h, err)
		}
	}
	return nil
}

// Normalize turns a user's reference into the one cnet stores, as Docker shows it: "busybox"
// is "busybox:latest", "docker.io/library/busybox" too, "reg:5000/app" is "reg:5000/app:latest".
func Normalize(ref string) (string, error) {
	t, err := name.NewTag(ref)
	if err != nil {
		return "", errdefs.Invalid("invalid reference format %q: %v", ref, err)
	}
	repo := t.RepositoryStr()
	if reg := t.RegistryStr(); reg != name.DefaultRegistry {
		repo = reg + "/" + repo
	} else {
		repo = strings.TrimPrefix(repo, "library/")
	}
	return repo + ":" + t.TagStr(), nil
}

// Summary is one image as `images` lists it.
type Summary struct {
	ID       v1.Hash // the config's digest, Docker's image ID
	Manifest v1.Hash
	RepoTags []string
	Created  time.Time
	Size     int64 // the layers' sizes as stored
	Labels   map[string]string
}

// List returns every image, newest first, with its references.
func (s *Store) List() ([]Summary, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.list()
}

func (s *Store) list() ([]Summary, error) {
	idx, err := s.layout.ImageIndex()
	if err != nil {
		return nil, fmt.Errorf("reading the image store's index: %w", err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("reading the image store's index: %w", err)
	}
	byManifest := map[v1.Hash]*Summary{}
	var out []*Summary
	for _, d := range im.Manifests {
		sum := byManifest[d.Digest]
		if sum == nil {
			img, err := s.layout.Image(d.Digest)
			if err != nil {
				return nil, fmt.Errorf("reading image %s: %w", d.Digest, err)
			}
			sum, err = summarize(img)
			if err != nil {
				return nil, err
			}
			byManifest[d.Digest] = sum
			out = append(out, sum)
		}
		if ref := d.Annotations[RefAnnotation]; ref != "" {
			sum.RepoTags = append(sum.RepoTags, ref)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Created.After(out[j].Created) })
	res := make([]Summary, len(out))
	for i, p := range out {
		sort.Strings(p.RepoTags)
		res[i] = *p
	}
	return res, nil
}

func summarize(img v1.Image) (*Summary, error) {
	id, err := img.ConfigName()
	if err != nil {
		return nil, fmt.Errorf("reading an image's config: %w", err)
	}
	m, err := img.Digest()
	if err != nil {
		return nil, err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("reading image %s's config: %w", id, err)
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, err
	}
	var size int64
	for _, l := range layers {
		n, err := l.Size()
		if err != nil {
			return nil, err
		}
		size += n
	}
	return &Summary{ID: id, Manifest: m, Created: cfg.Created.Time, Size: size, Labels: cfg.Config.Labels}, nil
}

// Resolve finds an image by reference, full ID, or a prefix of its ID of at least 4 hex digits
// (as Docker accepts "sha256:abc…", "abc…").
func (s *Store) Resolve(ref string) (v1.Image, Summary, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.resolve(ref)
}

func (s *Store) resolve(ref string) (v1.Image, Summary, error) {
	all, err := s.list()
	if err != nil {
		return nil, Summary{}, err
	}
	want, normErr := Normalize(ref)
	hex := strings.TrimPrefix(ref, "sha256:")
	var found []Summary
	for _, sum := range all {
		if normErr == nil && contains(sum.RepoTags, want) {
			found = []Summary{sum}
			break
		}
		if len(hex) >= 4 && strings.HasPrefix(sum.ID.Hex, hex) {
			found = append(found, sum)
		}
	}
	switch len(found) {
	case 0:
		return nil, Summary{}, errdefs.NotFound("No such image: %s", ref)
	case 1:
	default:
		return nil, Summary{}, errdefs.Invalid("%s is ambiguous: it names %d images", ref, len(found))
	}
	img, err := s.layout.Image(found[0].Manifest)
	if err != nil {
		return nil, Summary{}, fmt.Errorf("reading image %s: %w", ref, err)
	}
	return img, found[0], nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// add stores img under refs (none: an untagged image). An image from outside (untrusted) is
// validated whole first; one cnet made or already stores is not read again. A reference that
// named another image moves to this one, as in Docker.
func (s *Store) add(img v1.Image, refs []string, untrusted bool) error {
	if untrusted {
		if err := validate.Image(img); err != nil {
			return errdefs.Invalid("image refused: %v", err)
		}
	}
	// Layers are unpacked now, as Docker extracts them at load and pull: a hostile layer is
	// refused before anything of its image is stored, and a first container does not wait.
	if err := s.unpackLayers(img); err != nil {
		if cerr := s.collectLayers(); cerr != nil {
			err = errors.Join(err, cerr)
		}
		if errors.Is(err, syscall.ENOSPC) {
			return fmt.Errorf("unpacking the image's layers: %w", err)
		}
		return errdefs.Invalid("image refused: %v", err)
	}
	m, err := img.Digest()
	if err != nil {
		return err
	}
	if len(refs) == 0 {
		all, err := s.list()
		if err != nil {
			return err
		}
		for _, sum := range all {
			if sum.Manifest == m {
				return nil // already stored
			}
		}
		return s.wrapWrite(s.layout.AppendImage(img))
	}
	for _, ref := range refs {
		if err := s.layout.RemoveDescriptors(match.Annotation(RefAnnotation, ref)); err != nil {
			return s.wrapWrite(err)
		}
		if err := s.layout.AppendImage(img, layout.WithAnnotations(map[string]string{RefAnnotation: ref})); err != nil {
			return s.wrapWrite(err)
		}
	}
	return nil
}

// wrapWrite says what a failed write means, and collects what it left.
func (s *Store) wrapWrite(err error) error {
	if err == nil {
		return nil
	}
	if cerr := s.collect(); cerr != nil {
		err = errors.Join(err, cerr)
	}
	return fmt.Errorf("storing the image: %w", err)
}

// Tag gives the image src another reference dst.
func (s *Store) Tag(src, dst string) error {
	ref, err := Normalize(dst)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	img, _, err := s.resolve(src)
	if err != nil {
		return err
	}
	return s.add(img, []string{ref}, false)
}

// Removed is one line of what `rmi` reports.
type Removed struct {
	Untagged string
	Deleted  v1.Hash
}

// Remove takes a reference off its image, and deletes the image once it has none left. An image
// named by ID with several references is refused unless force, as Docker does; inUse says
// whether a container uses an image (by ID), which refuses its deletion unless force.
func (s *Store) Remove(ref string, force bool, inUse func(v1.Hash) bool) ([]Removed, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, sum, err := s.resolve(ref)
	if err != nil {
		return nil, err
	}
	byTag := false
	if norm, err := Normalize(ref); err == nil && contains(sum.RepoTags, norm) {
		byTag = true
		if len(sum.RepoTags) > 1 {
			if err := s.layout.RemoveDescriptors(match.Annotation(RefAnnotation, norm)); err != nil {
				return nil, s.wrapWrite(err)
			}
			return []Removed{{Untagged: norm}}, nil
		}
	}
	if !byTag && len(sum.RepoTags) > 1 && !force {
		return nil, errdefs.Conflict("unable to delete %s (must be forced) - image is referenced in multiple repositories", sum.ID.Hex[:12])
	}
	if inUse != nil && inUse(sum.ID) && !force {
		return nil, errdefs.Conflict("unable to delete %s (must be forced) - image is being used by a container", sum.ID.Hex[:12])
	}
	if err := s.layout.RemoveDescriptors(matchManifest(sum.Manifest)); err != nil {
		return nil, s.wrapWrite(err)
	}
	var out []Removed
	for _, t := range sum.RepoTags {
		out = append(out, Removed{Untagged: t})
	}
	out = append(out, Removed{Deleted: sum.ID})
	return out, errors.Join(s.collect(), s.collectLayers())
}

// matchManifest matches every descriptor of one image, whatever its reference.
func matchManifest(h v1.Hash) match.Matcher { return match.Digests(h) }

// LoadTarball stores the images of a `docker save` archive (or of an OCI image layout archive,
// ocilayout.go) (read whole from r first, as the
// archive's manifest may come after its layers) and returns their references, or IDs for
// untagged ones.
func (s *Store) LoadTarball(r io.Reader) ([]string, error) {
	tmp, err := os.CreateTemp(s.root, "load-*.tar")
	if err != nil {
		return nil, fmt.Errorf("receiving the archive: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, r); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("receiving the archive: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("receiving the archive: %w", err)
	}
	opener := func() (io.ReadCloser, error) { return os.Open(tmp.Name()) }
	s.mu.Lock()
	defer s.mu.Unlock()
	mf, err := tarball.LoadManifest(opener)
	if err != nil {
		// No manifest.json: an OCI image layout, or nothing cnet can read.
		return s.loadLayoutArchive(tmp.Name())
	}
	var loaded []string
	for _, d := range mf {
		var refs []string
		for _, t := range d.RepoTags {
			ref, err := Normalize(t)
			if err != nil {
				return loaded, err
			}
			refs = append(refs, ref)
		}
		var tag *name.Tag
		if len(d.RepoTags) > 0 {
			t, err := name.NewTag(d.RepoTags[0])
			if err != nil {
				return loaded, errdefs.Invalid("invalid tag %q in the archive: %v", d.RepoTags[0], err)
			}
			tag = &t
		} else if len(mf) > 1 {
			return loaded, errdefs.Invalid("the archive holds several images and one has no tag: cnet cannot tell them apart")
		}
		img, err := tarball.Image(opener, tag)
		if err != nil {
			return loaded, errdefs.Invalid("reading the archive's image: %v", err)
		}
		if err := s.add(img, refs, true); err != nil {
			return loaded, err
		}
		if len(refs) == 0 {
			id, _ := img.ConfigName()
			refs = []string{id.String()}
		}
		loaded = append(loaded, refs...)
	}
	return loaded, nil
}
