package daemon

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/cnet-dev/cnet/internal/api"
	"github.com/cnet-dev/cnet/internal/errdefs"
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
			Size: s.Size, VirtualSize: s.Size, SharedSize: -1, Containers: -1, Labels: nonNil(s.Labels)})
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
		d.loadedEvent(ref)
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
	if err := d.images.Tag(source, target); err != nil {
		return err
	}
	if _, sum, err := d.images.Resolve(target); err == nil {
		norm, _ := image.Normalize(target)
		d.imageEvent("tag", sum.ID.String(), norm)
	}
	return nil
}

// ImageRemove implements api.Backend. An image a container runs from is kept unless force.
func (d *Daemon) ImageRemove(_ context.Context, name string, force bool) ([]api.ImageDeleteItem, error) {
	_, sum, _ := d.images.Resolve(name)
	removed, err := d.images.Remove(name, force, d.imageInUse)
	if err != nil {
		return nil, err
	}
	out := make([]api.ImageDeleteItem, 0, len(removed))
	for _, r := range removed {
		item := api.ImageDeleteItem{Untagged: r.Untagged}
		if r.Deleted != (v1.Hash{}) {
			item.Deleted = r.Deleted.String()
			d.imageEvent("delete", item.Deleted, "")
		} else {
			d.imageEvent("untag", sum.ID.String(), r.Untagged)
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
	d.imageEvent("import", id.String(), ref)
	return id.String(), nil
}

// ImagePrune implements api.Backend, with Docker's filters: dangling=true (the default) removes
// the images no reference names, dangling=false (`prune -a`) every image; never one a container
// uses; `until` keeps images created after a time, `label`/`label!` select by the image's labels.
func (d *Daemon) ImagePrune(_ context.Context, f api.Filters) (api.ImagePruneResponse, error) {
	if err := f.Only("dangling", "until", "label", "label!"); err != nil {
		return api.ImagePruneResponse{}, err
	}
	dangling, set, err := f.Bool("dangling")
	if err != nil {
		return api.ImagePruneResponse{}, err
	}
	onlyDangling := dangling || !set
	until, byTime, err := f.Until(time.Now())
	if err != nil {
		return api.ImagePruneResponse{}, err
	}
	removed, freed, err := d.images.Prune(func(s image.Summary) bool {
		return (!onlyDangling || len(s.RepoTags) == 0) && !d.imageInUse(s.ID) &&
			(!byTime || s.Created.Before(until)) && f.MatchLabels(s.Labels)
	})
	out := api.ImagePruneResponse{ImagesDeleted: []api.ImageDeleteItem{}, SpaceReclaimed: freed}
	for _, r := range removed {
		if r.Untagged != "" {
			out.ImagesDeleted = append(out.ImagesDeleted, api.ImageDeleteItem{Untagged: r.Untagged})
		} else {
			out.ImagesDeleted = append(out.ImagesDeleted, api.ImageDeleteItem{Deleted: r.Deleted.String()})
		}
	}
	return out, err
}

// ImagePull implements api.Backend.
func (d *Daemon) ImagePull(ctx context.Context, ref string, progress func(api.Progress)) error {
	norm, err := d.images.Pull(ctx, ref, image.PullOptions{Insecure: d.cfg.InsecureRegistries, Progress: func(p image.Progress) {
		progress(api.Progress{ID: p.ID, Status: p.Status, Layer: p.Layer, Current: p.Current, Total: p.Total})
	}})
	if err == nil {
		d.imageEvent("pull", norm, norm)
	}
	return err
}

// loadedEvent records an image load: Docker's actor is the image's ID, named by the reference
// loaded (an image loaded untagged is named by its ID).
func (d *Daemon) loadedEvent(ref string) {
	if _, sum, err := d.images.Resolve(ref); err == nil {
		d.imageEvent("load", sum.ID.String(), ref)
	}
}

// applyImage resolves cfg.Image, when set, in the store and applies the image's config as
// Docker does: Entrypoint (unless cfg gives one, even empty) then Cmd (cfg's, else the image's),
// the image's Env under cfg's (cfg wins by key), its WorkingDir and User unless cfg gives them, its
// ExposedPorts with cfg's (for -P). It returns the image's ID ("" for no image).
func (d *Daemon) applyImage(cfg *api.ContainerConfig) (string, error) {
	if cfg.Image == "" {
		return "", nil
	}
	if cfg.Rootfs != "" {
		return "", errdefs.Invalid("a container runs from an image or from --rootfs, not both")
	}
	img, sum, err := d.images.Resolve(cfg.Image)
	if err != nil {
		return "", err
	}
	ic, err := img.ConfigFile()
	if err != nil {
		return "", fmt.Errorf("reading image %s: %w", cfg.Image, err)
	}
	entry := ic.Config.Entrypoint
	if cfg.Entrypoint != nil {
		entry = cfg.Entrypoint
	}
	cmd := cfg.Cmd
	if len(cmd) == 0 && cfg.Entrypoint == nil {
		cmd = ic.Config.Cmd
	}
	cfg.Cmd = append(append([]string{}, entry...), cmd...)
	cfg.Env = mergeEnv(ic.Config.Env, cfg.Env)
	if cfg.WorkingDir == "" {
		cfg.WorkingDir = ic.Config.WorkingDir
	}
	if cfg.User == "" {
		cfg.User = ic.Config.User
	}
	for p := range ic.Config.ExposedPorts {
		if cfg.ExposedPorts == nil {
			cfg.ExposedPorts = map[string]struct{}{}
		}
		cfg.ExposedPorts[p] = struct{}{}
	}
	return sum.ID.String(), nil
}

// mergeEnv is base with over's variables added or replacing base's of the same name.
func mergeEnv(base, over []string) []string {
	out := append([]string{}, base...)
	for _, kv := range over {
		name, _, _ := strings.Cut(kv, "=")
		replaced := false
		for i, b := range out {
			if n, _, _ := strings.Cut(b, "="); n == name {
				out[i], replaced = kv, true
			}
		}
		if !replaced {
			out = append(out, kv)
		}
	}
	return out
}

// imageRoot is where a container's root from an image lives: on disk under the data root (its
// writes are the container's, kept across daemon restarts until it is removed).
func (d *Daemon) imageRoot(id string) string { return filepath.Join(d.cfg.DataRoot, "containers", id) }

// mountImageRoot mounts the overlay root of container id from its image, unpacking layers not
// unpacked yet, and returns the mount point.
func (d *Daemon) mountImageRoot(id, imageID string) (string, error) {
	layers, err := d.images.Layers(imageID)
	if err != nil {
		return "", err
	}
	dir := d.imageRoot(id)
	root := filepath.Join(dir, "rootfs")
	if err := image.Mount(layers, filepath.Join(dir, "upper"), filepath.Join(dir, "work"), root); err != nil {
		return "", err
	}
	return root, nil
}

// removeImageRoot unmounts a removed container's root and deletes its writes.
func (d *Daemon) removeImageRoot(id string) error {
	dir := d.imageRoot(id)
	if err := image.Unmount(filepath.Join(dir, "rootfs")); err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("removing the writes of container %s: %w", id[:12], err)
	}
	return nil
}

// imageName is a container's image as `ps` shows it: the name it was run with, or its rootfs.
func imageName(rec containerRecord) string {
	if rec.Config.Image != "" {
		return rec.Config.Image
	}
	return rec.Config.Rootfs
}

// imageRef is a container's image as inspect's Image shows it: the image's ID, or its rootfs.
func imageRef(rec containerRecord) string {
	if rec.ImageID != "" {
		return rec.ImageID
	}
	return rec.Config.Rootfs
}

// imageInUse reports whether a container runs from the image id, which refuses its removal.
func (d *Daemon) imageInUse(id v1.Hash) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, c := range d.containers {
		if c.view().ImageID == id.String() {
			return true
		}
	}
	return false
}
