package image

import (
	"os"
	"runtime"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"

	"github.com/cnet-dev/cnet/internal/errdefs"
)

// containerdNameAnnotation is where Docker (25 and later) and containerd put an image's full
// name in an OCI layout's index; org.opencontainers.image.ref.name then holds only the tag.
const containerdNameAnnotation = "io.containerd.image.name"

// loadLayoutArchive stores the images of an OCI image layout archive (`docker save` from
// Docker 25 on writes one beside its manifest.json; `skopeo copy oci-archive:`, buildah and
// others write only this). The archive is unpacked with Unpack's confinement into a temporary
// directory first. Called with s.mu held; path is the received archive.
func (s *Store) loadLayoutArchive(path string) ([]string, error) {
	dir, err := os.MkdirTemp(s.root, "oci-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	err = Unpack(f, dir)
	f.Close()
	if err != nil {
		return nil, errdefs.Invalid("not an image archive: %v", err)
	}
	if _, err := os.Stat(dir + "/oci-layout"); err != nil {
		return nil, errdefs.Invalid("not an image archive: it has neither manifest.json (docker save) nor oci-layout (an OCI image layout)")
	}
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return nil, errdefs.Invalid("reading the archive's OCI layout: %v", err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, errdefs.Invalid("reading the archive's OCI layout: %v", err)
	}
	var loaded []string
	for _, d := range im.Manifests {
		img, err := layoutImage(idx, d)
		if err != nil {
			return loaded, err
		}
		var refs []string
		// ref.name alone is often only a tag ("latest", as skopeo writes it): without the
		// repository it names nothing, and the image loads untagged, as in Docker.
		name := d.Annotations[containerdNameAnnotation]
		if r := d.Annotations[RefAnnotation]; name == "" && strings.ContainsAny(r, "/:") {
			name = r
		}
		if norm, err := Normalize(name); name != "" && err == nil {
			refs = []string{norm}
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
	if len(loaded) == 0 {
		return nil, errdefs.Invalid("the archive's OCI layout holds no image")
	}
	return loaded, nil
}

// layoutImage is the image a descriptor of the layout's index names: itself, or for an index
// (a multi-platform image) its manifest for this machine's platform.
func layoutImage(idx v1.ImageIndex, d v1.Descriptor) (v1.Image, error) {
	if d.MediaType.IsImage() {
		img, err := idx.Image(d.Digest)
		if err != nil {
			return nil, errdefs.Invalid("reading image %s of the archive: %v", d.Digest, err)
		}
		return img, nil
	}
	if !d.MediaType.IsIndex() {
		return nil, errdefs.Invalid("the archive's index names %s, neither an image nor an index", d.MediaType)
	}
	child, err := idx.ImageIndex(d.Digest)
	if err != nil {
		return nil, errdefs.Invalid("reading index %s of the archive: %v", d.Digest, err)
	}
	cm, err := child.IndexManifest()
	if err != nil {
		return nil, errdefs.Invalid("reading index %s of the archive: %v", d.Digest, err)
	}
	for _, m := range cm.Manifests {
		if m.MediaType.IsImage() && m.Platform != nil && m.Platform.OS == "linux" && m.Platform.Architecture == runtime.GOARCH {
			return layoutImage(child, m)
		}
	}
	return nil, errdefs.Invalid("the archive has no image for linux/%s", runtime.GOARCH)
}
