package image

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"
)

// A container's root is an overlay: its image's layers, unpacked once each by diff ID under
// ROOT/layers, below an upper directory of its own. Mount and Unmount make and remove it.

// Layers unpacks the layers of the image named by id (its config digest) that are not unpacked
// yet, and returns their directories from the bottom layer up.
func (s *Store) Layers(id string) ([]string, error) {
	img, _, err := s.Resolve(id)
	if err != nil {
		return nil, err
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, fmt.Errorf("reading image %s: %w", id, err)
	}
	// One unpack at a time: two containers starting from one new image must not both unpack
	// its layers. Listing does not wait for a container's unpack here; it does wait while an
	// image being stored is unpacked (add holds mu then), which a first run then skips.
	s.unpackMu.Lock()
	defer s.unpackMu.Unlock()
	var dirs []string
	for _, l := range layers {
		dir, err := s.unpacked(l)
		if err != nil {
			return nil, err
		}
		dirs = append(dirs, dir)
	}
	return dirs, nil
}

// unpackLayers unpacks every layer of img not unpacked yet. Called with s.mu held.
func (s *Store) unpackLayers(img v1.Image) error {
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	s.unpackMu.Lock()
	defer s.unpackMu.Unlock()
	for _, l := range layers {
		if _, err := s.unpacked(l); err != nil {
			return err
		}
	}
	return nil
}

// unpacked returns the directory of layer l, unpacking it first if needed: into a temporary
// directory renamed into place, so that a crash leaves no half-unpacked layer under its name.
func (s *Store) unpacked(l v1.Layer) (string, error) {
	diff, err := l.DiffID()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(s.root, "layers", diff.Hex)
	if _, err := os.Stat(dir); err == nil {
		return dir, nil
	}
	if err := os.MkdirAll(filepath.Join(s.root, "layers"), 0o700); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(filepath.Join(s.root, "layers"), ".unpack-")
	if err != nil {
		return "", err
	}
	rc, err := l.Uncompressed()
	if err != nil {
		os.RemoveAll(tmp)
		return "", fmt.Errorf("reading layer %s: %w", diff.Hex[:12], err)
	}
	err = Unpack(rc, tmp)
	rc.Close()
	if err == nil {
		err = os.Rename(tmp, dir)
	}
	if err != nil {
		os.RemoveAll(tmp)
		return "", fmt.Errorf("unpacking layer %s: %w", diff.Hex[:12], err)
	}
	return dir, nil
}

// collectLayers removes unpacked layers that no stored image has any more, and unpacks that a
// crash left half done. Called with s.mu held.
func (s *Store) collectLayers() error {
	all, err := s.list()
	if err != nil {
		return err
	}
	keep := map[string]bool{}
	for _, sum := range all {
		img, err := s.layout.Image(sum.Manifest)
		if err != nil {
			return err
		}
		cfg, err := img.ConfigFile()
		if err != nil {
			return err
		}
		for _, d := range cfg.RootFS.DiffIDs {
			keep[d.Hex] = true
		}
	}
	entries, err := os.ReadDir(filepath.Join(s.root, "layers"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	s.unpackMu.Lock()
	defer s.unpackMu.Unlock()
	var errs []error
	for _, e := range entries {
		if keep[e.Name()] {
			continue
		}
		errs = append(errs, os.RemoveAll(filepath.Join(s.root, "layers", e.Name())))
	}
	return errors.Join(errs...)
}

// Mount makes target the root of a container: an overlay of layers (bottom first) below
// upper, with work as overlayfs's work directory; upper and work are created if missing. A
// target already mounted (a container started again) is left as it is.
func Mount(layers []string, upper, work, target string) error {
	if mounted(target) {
		return nil
	}
	for _, d := range []string{upper, work, target} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("preparing the container's root: %w", err)
		}
	}
	lower := make([]string, len(layers))
	for i, l := range layers {
		lower[len(layers)-1-i] = l // overlayfs lists the top layer first
	}
	opts := "lowerdir=" + strings.Join(lower, ":") + ",upperdir=" + upper + ",workdir=" + work
	if err := unix.Mount("overlay", target, "overlay", 0, opts); err != nil {
		return fmt.Errorf("mounting the container's root (overlayfs): %w", err)
	}
	return nil
}

// Unmount removes a container's root mount; one not mounted is not an error.
func Unmount(target string) error {
	if err := unix.Unmount(target, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmounting the container's root %s: %w", target, err)
	}
	return nil
}

// mounted reports whether path is a mount point (its device differs from its parent's).
func mounted(path string) bool {
	var st, parent unix.Stat_t
	if unix.Lstat(path, &st) != nil || unix.Lstat(filepath.Dir(path), &parent) != nil {
		return false
	}
	return st.Dev != parent.Dev
}
