package daemon

import (
	"context"
	"io"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/cnet-dev/cnet/internal/api"
	"github.com/cnet-dev/cnet/internal/image"
)

// The images' part of the API, on the local store (internal/image) under the data root.

// ImageList implements api.Backend.
func (d *Daemon) ImageList(context.Context) ([]api.ImageSummary, error) {
	list, err := d.images.List()
	if err != nil {
		return nil, err
	}
	out := make([]api.ImageSummary, 0, len(list))
	for _, s := range list {
		tags := s.RepoTags
		if tags == nil {
			tags = []string{}
		}
		created := int64(0) // an image with no creation time (reproducible builds) is from the epoch, as in Docker
		if !s.Created.IsZero() {
			created = s.Created.Unix()
		}
		out = append(out, api.ImageSummary{ID: s.ID.String(), RepoTags: tags, RepoDigests: []string{}, Created: created,
			Size: s.Size, VirtualSize: s.Size, SharedSize: -1, Containers: -1, Labels: map[string]string{}})
	}
	return out, nil
}

// ImageInspect implements api.Backend.
func (d *Daemon) ImageInspect(_ context.Context, name string) (api.ImageInspect, error) {
	img, sum, err := d.images.Resolve(name)
	if err != nil {
		return api.ImageInspect{}, err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return api.ImageInspect{}, err
	}
	tags := sum.RepoTags
	if tags == nil {
		tags = []string{}
	}
	out := api.ImageInspect{
		ID: sum.ID.String(), RepoTags: tags, RepoDigests: []string{}, Created: cfg.Created.Time.UTC().Format(time.RFC3339Nano),
		Architecture: cfg.Architecture, Os: cfg.OS, Size: sum.Size, VirtualSize: sum.Size,
		Config: imageConfig(cfg.Config), RootFS: api.ImageRootFS{Type: "layers", Layers: []string{}},
	}
	for _, l := range cfg.RootFS.DiffIDs {
		out.RootFS.Layers = append(out.RootFS.Layers, l.String())
	}
	return out, nil
}

func imageConfig(c v1.Config) api.ImageConfig {
	out := api.ImageConfig{Cmd: c.Cmd, Entrypoint: c.Entrypoint, Env: c.Env, WorkingDir: c.WorkingDir, User: c.User, Labels: c.Labels}
	if len(c.ExposedPorts) > 0 {
		out.ExposedPorts = map[string]struct{}{}
		for p := range c.ExposedPorts {
			out.ExposedPorts[p] = struct{}{}
		}
	}
	return out
}

// ImageLoad implements api.Backend.
func (d *Daemon) ImageLoad(_ context.Context, r io.Reader) ([]string, error) {
	refs, err := d.images.LoadTarball(r)
	var lines []string
	for _, ref := range refs {
		if strings.HasPrefix(ref, "sha256:") {
			lines = append(lines, "Loaded image ID: "+ref)
		} else {
			lines = append(lines, "Loaded image: "+ref)
		}
	}
	return lines, err
}

// ImageTag implements api.Backend.
func (d *Daemon) ImageTag(_ context.Context, source, target string) error {
	return d.images.Tag(source, target)
}

// ImageRemove implements api.Backend. Containers do not run from images yet, so none holds one.
func (d *Daemon) ImageRemove(_ context.Context, name string, force bool) ([]api.ImageDeleteItem, error) {
	removed, err := d.images.Remove(name, force, nil)
	if err != nil {
		return nil, err
	}
	out := make([]api.ImageDeleteItem, 0, len(removed))
	for _, r := range removed {
		item := api.ImageDeleteItem{Untagged: r.Untagged}
		if r.Deleted != (v1.Hash{}) {
			item.Deleted = r.Deleted.String()
		}
		out = append(out, item)
	}
	return out, nil
}

// ImageSave implements api.Backend.
func (d *Daemon) ImageSave(_ context.Context, w io.Writer, names []string) error {
	return d.images.Save(w, names)
}

// ImageImport implements api.Backend.
func (d *Daemon) ImageImport(_ context.Context, r io.Reader, ref string) (string, error) {
	id, err := d.images.Import(r, ref)
	if err != nil {
		return "", err
	}
	return id.String(), nil
}

// ImagePrune implements api.Backend: the dangling images go.
func (d *Daemon) ImagePrune(context.Context) (api.ImagePruneResponse, error) {
	removed, freed, err := d.images.Prune(nil)
	out := api.ImagePruneResponse{ImagesDeleted: []api.ImageDeleteItem{}, SpaceReclaimed: freed}
	for _, r := range removed {
		out.ImagesDeleted = append(out.ImagesDeleted, api.ImageDeleteItem{Deleted: r.Deleted.String()})
	}
	return out, err
}

// ImagePull implements api.Backend.
func (d *Daemon) ImagePull(ctx context.Context, ref string, progress func(id, status string)) error {
	_, err := d.images.Pull(ctx, ref, image.PullOptions{Insecure: d.cfg.InsecureRegistries, Progress: progress})
	return err
}
