package image

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/cache"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/cnet-dev/cnet/internal/errdefs"
)

// PullOptions are how Pull reaches registries.
type PullOptions struct {
	// Insecure lists registries (host[:port]) reached over plain http, as the daemon's
	// --insecure-registry names them; every other one is https.
	Insecure []string
	// Transport, if set, carries the requests (tests dial into their own namespaces).
	Transport http.RoundTripper
	// Progress, if set, is told of each step, as Docker's pull reports them.
	Progress func(Progress)
}

// Progress is one step of a pull, in Docker's terms.
type Progress struct {
	// ID is a layer's short digest, or "" for the image as a whole.
	ID     string
	Status string
	// Layer is true for a layer's steps, which Docker's clients draw as one line per layer;
	// Current and Total (bytes) are set while it downloads.
	Layer          bool
	Current, Total int64
}

// Pull fetches ref from its registry for this machine's platform and stores it. Every layer
// is downloaded once, into a cache beside the store, and checked against its digest before the
// image's first blob is written; a failure leaves nothing. It returns the normalized reference.
func (s *Store) Pull(ctx context.Context, ref string, o PullOptions) (string, error) {
	norm, err := Normalize(ref)
	if err != nil {
		return "", err
	}
	var nopts []name.Option
	probe, _ := name.NewTag(ref)
	for _, r := range o.Insecure {
		if probe.RegistryStr() == r {
			nopts = append(nopts, name.Insecure)
		}
	}
	tag, err := name.NewTag(ref, nopts...)
	if err != nil {
		return "", errdefs.Invalid("invalid reference format %q: %v", ref, err)
	}
	report := o.Progress
	if report == nil {
		report = func(Progress) {}
	}
	progress := func(id, status string) { report(Progress{ID: id, Status: status, Layer: id != ""}) }
	base := o.Transport
	if base == nil {
		base = remote.DefaultTransport
	}
	plain := len(nopts) > 0 || isLoopback(probe.RegistryStr())
	ropts := []remote.Option{remote.WithContext(ctx), remote.WithPlatform(v1.Platform{OS: "linux", Architecture: runtime.GOARCH}),
		remote.WithTransport(httpsOnly{base: base, plain: plain})}
	progress("", tag.TagStr()+": Pulling from "+tag.RepositoryStr())
	img, err := remote.Image(tag, ropts...)
	if err != nil {
		return "", pullError(ref, err)
	}
	dir, err := os.MkdirTemp(s.root, "pull-")
	if err != nil {
		return "", fmt.Errorf("pulling %s: %w", ref, err)
	}
	defer os.RemoveAll(dir)
	cached := cache.Image(img, cache.NewFilesystemCache(dir))
	layers, err := cached.Layers()
	if err != nil {
		return "", pullError(ref, err)
	}
	for _, l := range layers {
		if d, err := l.Digest(); err == nil {
			progress(d.Hex[:12], "Pulling fs layer")
		}
	}
	if err := download(ctx, layers, report); err != nil {
		return "", pullError(ref, err)
	}
	// Reads the image back from the cache, checking every digest and size.
	if err := validate.Image(cached); err != nil {
		return "", errdefs.Invalid("image %s refused: %v", ref, err)
	}
	for _, l := range layers {
		if d, err := l.Digest(); err == nil {
			progress(d.Hex[:12], "Pull complete")
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.add(cached, []string{norm}, false); err != nil {
		return "", err
	}
	if d, err := img.Digest(); err == nil {
		progress("", "Digest: "+d.String())
	}
	progress("", "Status: Downloaded newer image for "+norm)
	return norm, nil
}

// pullError says what failed in a way a user can act on: a missing image is not found, any
// other failure (an unreachable registry, a refused connection) says where to look.
func pullError(ref string, err error) error {
	var terr *transport.Error
	if errors.As(err, &terr) && terr.StatusCode == http.StatusNotFound {
		return errdefs.NotFound("pull access denied for %s, repository does not exist or may require 'docker login': %v", ref, err)
	}
	return fmt.Errorf("pulling %s: %w (is the registry reachable? one that speaks plain http needs the daemon's --insecure-registry)", ref, err)
}

// httpsOnly refuses plain http unless the registry may use it. go-containerregistry falls back
// to http for private (RFC 1918) addresses too; Docker does only for loopback and the
// registries its daemon names with --insecure-registry, and so does cnet.
type httpsOnly struct {
	base  http.RoundTripper
	plain bool
}

func (t httpsOnly) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Scheme == "http" && !t.plain {
		return nil, fmt.Errorf("%s answers only over plain http, which cnet uses for a registry named with --insecure-registry", r.URL.Host)
	}
	return t.base.RoundTrip(r)
}

// isLoopback reports a registry on this host's loopback (localhost, 127.0.0.0/8, ::1), which
// Docker reaches over plain http without being told.
func isLoopback(registry string) bool {
	host := registry
	if h, _, err := net.SplitHostPort(registry); err == nil {
		host = h
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}
