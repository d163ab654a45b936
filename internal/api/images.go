package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/cnet-dev/cnet/internal/errdefs"
)

// Images, in the Engine API's shapes (v1.41): GET /images/json, GET /images/{name}/json,
// POST /images/load, POST /images/{name}/tag, DELETE /images/{name}. Image names hold slashes
// ("reg:5000/app"), so these routes are parsed by hand below one prefix.

// ImageSummary is one entry of GET /images/json.
type ImageSummary struct {
	ID          string            `json:"Id"`
	ParentID    string            `json:"ParentId"`
	RepoTags    []string          `json:"RepoTags"`
	RepoDigests []string          `json:"RepoDigests"`
	Created     int64             `json:"Created"`
	Size        int64             `json:"Size"`
	SharedSize  int64             `json:"SharedSize"`
	VirtualSize int64             `json:"VirtualSize"`
	Labels      map[string]string `json:"Labels"`
	Containers  int64             `json:"Containers"`
}

// ImageConfig is the part of an image's config a container starts from.
type ImageConfig struct {
	Cmd          []string            `json:"Cmd"`
	Entrypoint   []string            `json:"Entrypoint"`
	Env          []string            `json:"Env"`
	WorkingDir   string              `json:"WorkingDir"`
	User         string              `json:"User"`
	ExposedPorts map[string]struct{} `json:"ExposedPorts,omitempty"`
	Labels       map[string]string   `json:"Labels"`
}

// ImageRootFS lists an image's layers by diff ID.
type ImageRootFS struct {
	Type   string   `json:"Type"`
	Layers []string `json:"Layers"`
}

// ImageInspect is GET /images/{name}/json.
type ImageInspect struct {
	ID           string      `json:"Id"`
	RepoTags     []string    `json:"RepoTags"`
	RepoDigests  []string    `json:"RepoDigests"`
	Parent       string      `json:"Parent"`
	Created      string      `json:"Created"`
	Config       ImageConfig `json:"Config"`
	Architecture string      `json:"Architecture"`
	Os           string      `json:"Os"`
	Size         int64       `json:"Size"`
	VirtualSize  int64       `json:"VirtualSize"`
	RootFS       ImageRootFS `json:"RootFS"`
}

// ImageDeleteItem is one line of DELETE /images/{name}'s answer.
type ImageDeleteItem struct {
	Untagged string `json:"Untagged,omitempty"`
	Deleted  string `json:"Deleted,omitempty"`
}

// ImageBackend is the images' part of Backend.
type ImageBackend interface {
	ImageList(ctx context.Context) ([]ImageSummary, error)
	ImageInspect(ctx context.Context, name string) (ImageInspect, error)
	// ImageLoad stores the images of a `docker save` archive and returns what it loaded, as
	// "Loaded image: REF" or "Loaded image ID: sha256:…" lines.
	ImageLoad(ctx context.Context, r io.Reader) ([]string, error)
	ImageTag(ctx context.Context, source, target string) error
	ImageRemove(ctx context.Context, name string, force bool) ([]ImageDeleteItem, error)
	// ImageSave writes the named images as one `docker save` archive to w.
	ImageSave(ctx context.Context, w io.Writer, names []string) error
	// ImageImport makes an image of a root filesystem tar, named ref ("" for none), and
	// returns its ID.
	ImageImport(ctx context.Context, r io.Reader, ref string) (string, error)
	// ImagePrune removes unused images as Docker's filters (dangling, until, label) select.
	ImagePrune(ctx context.Context, f Filters) (ImagePruneResponse, error)
	// ImagePull fetches ref from its registry, telling progress of each step.
	ImagePull(ctx context.Context, ref string, progress func(Progress)) error
}

// Progress is one step of a pull, as Docker's JSON stream tells it.
type Progress struct {
	// ID is a layer's short digest, or "" for the image as a whole.
	ID     string
	Status string
	// Layer is true for a layer's steps (Docker sends them with a progressDetail, which its
	// clients draw as one line per layer); Current and Total are the bytes of a download.
	Layer          bool
	Current, Total int64
}

// progressMessage is one line of POST /images/create's answer (a JSON stream, as Docker's).
type progressMessage struct {
	Status         string          `json:"status,omitempty"`
	ProgressDetail *progressDetail `json:"progressDetail,omitempty"`
	// Progress is the bar as text, which Docker's daemon sends for clients that draw none.
	Progress string `json:"progress,omitempty"`
	ID       string `json:"id,omitempty"`
	Error    string `json:"error,omitempty"`
}

type progressDetail struct {
	Current int64 `json:"current,omitempty"`
	Total   int64 `json:"total,omitempty"`
}

func (p Progress) message() progressMessage {
	m := progressMessage{ID: p.ID, Status: p.Status}
	if p.Layer {
		m.ProgressDetail = &progressDetail{Current: p.Current, Total: p.Total}
	}
	if p.Total > 0 {
		m.Progress = ProgressBar(p.Current, p.Total, 50)
	}
	return m
}

func (m progressMessage) progress() Progress {
	p := Progress{ID: m.ID, Status: m.Status, Layer: m.ProgressDetail != nil}
	if m.ProgressDetail != nil {
		p.Current, p.Total = m.ProgressDetail.Current, m.ProgressDetail.Total
	}
	return p
}

// ImagePruneResponse is POST /images/prune's answer.
type ImagePruneResponse struct {
	ImagesDeleted  []ImageDeleteItem `json:"ImagesDeleted"`
	SpaceReclaimed int64             `json:"SpaceReclaimed"`
}

func (s *server) imageSave(w http.ResponseWriter, r *http.Request) {
	names := r.URL.Query()["names"]
	if len(names) == 0 {
		writeError(w, errdefs.Invalid("save needs at least one image"))
		return
	}
	// Errors found before the first byte get a status; the archive is then streamed.
	pw := &lazyWriter{w: w}
	if err := s.b.ImageSave(r.Context(), pw, names); err != nil {
		if !pw.started {
			writeError(w, err)
		}
		return
	}
}

// lazyWriter sets the archive's headers on its first write, so that an error before it can
// still be answered with a status.
type lazyWriter struct {
	w       http.ResponseWriter
	started bool
}

func (l *lazyWriter) Write(p []byte) (int, error) {
	if !l.started {
		l.started = true
		l.w.Header().Set("Content-Type", "application/x-tar")
		l.w.WriteHeader(http.StatusOK)
	}
	return l.w.Write(p)
}

func (s *server) imageCreate(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if from := q.Get("fromImage"); from != "" {
		s.imagePull(w, r, from, q.Get("tag"))
		return
	}
	if q.Get("fromSrc") != "-" {
		writeError(w, errdefs.Invalid("cnet imports from the request body only (fromSrc=-) or pulls (fromImage=REF)"))
		return
	}
	ref := q.Get("repo")
	if t := q.Get("tag"); ref != "" && t != "" {
		ref += ":" + t
	}
	id, err := s.b.ImageImport(r.Context(), r.Body, ref)
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]string{"status": id})
}

// imagePull streams a pull's progress. Docker answers 200 at once and reports a failure as the
// stream's last message, which is what its clients read.
func (s *server) imagePull(w http.ResponseWriter, r *http.Request, from, tag string) {
	ref := from
	if tag != "" && !strings.Contains(from[strings.LastIndex(from, "/")+1:], ":") && !strings.Contains(from, "@") {
		ref += ":" + tag
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	flusher, _ := w.(http.Flusher)
	send := func(m progressMessage) {
		_ = enc.Encode(m)
		if flusher != nil {
			flusher.Flush()
		}
	}
	err := s.b.ImagePull(r.Context(), ref, func(p Progress) { send(p.message()) })
	if err != nil {
		send(progressMessage{Error: err.Error()})
	}
}

func (s *server) imagePrune(w http.ResponseWriter, r *http.Request) {
	serveFiltered(w, r, s.b.ImagePrune)
}

// ImageSave is GET /images/get: the archive, streamed to w.
func (c *Client) ImageSave(ctx context.Context, w io.Writer, names []string) error {
	resp, err := c.send(ctx, http.MethodGet, "/images/get", url.Values{"names": names}, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.Copy(w, resp.Body)
	return err
}

// ImageImport is POST /images/create?fromSrc=- with a root filesystem tar.
func (c *Client) ImageImport(ctx context.Context, r io.Reader, ref string) (string, error) {
	q := url.Values{"fromSrc": {"-"}}
	if ref != "" {
		repo, tag := ref, ""
		if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
			repo, tag = ref[:i], ref[i+1:]
		}
		q.Set("repo", repo)
		q.Set("tag", tag)
	}
	resp, err := c.send(ctx, http.MethodPost, "/images/create", q, rawBody{r, "application/x-tar"})
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var out struct {
		Status string `json:"status"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return "", fmt.Errorf("reading the daemon's answer to import: %w", err)
	}
	return out.Status, nil
}

// ImagePrune is POST /images/prune?filters=….
func (c *Client) ImagePrune(ctx context.Context, f Filters) (ImagePruneResponse, error) {
	var out ImagePruneResponse
	err := c.call(ctx, http.MethodPost, "/images/prune", filterQuery(f), nil, &out)
	return out, err
}

// loadStream is one line of POST /images/load's answer (a JSON stream, as Docker's).
type loadStream struct {
	Stream string `json:"stream,omitempty"`
	Error  string `json:"error,omitempty"`
}

func (s *server) imageList(w http.ResponseWriter, r *http.Request) {
	f, err := ParseFilters(r.URL.Query().Get("filters"))
	if err != nil {
		writeError(w, err)
		return
	}
	list, err := s.b.ImageList(r.Context())
	if err == nil {
		list, err = FilterImages(f, list)
	}
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, list)
}

// imageByName serves GET /images/NAME/json, POST /images/NAME/tag and DELETE /images/NAME.
func (s *server) imageByName(w http.ResponseWriter, r *http.Request) {
	rest := strings.TrimPrefix(r.URL.Path, "/images/")
	switch {
	case r.Method == http.MethodGet && strings.HasSuffix(rest, "/json"):
		img, err := s.b.ImageInspect(r.Context(), strings.TrimSuffix(rest, "/json"))
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, img)
	case r.Method == http.MethodPost && strings.HasSuffix(rest, "/tag"):
		q := r.URL.Query()
		target := q.Get("repo")
		if t := q.Get("tag"); t != "" {
			target += ":" + t
		}
		if err := s.b.ImageTag(r.Context(), strings.TrimSuffix(rest, "/tag"), target); err != nil {
			writeError(w, err)
			return
		}
		w.WriteHeader(http.StatusCreated)
	case r.Method == http.MethodDelete && rest != "":
		items, err := s.b.ImageRemove(r.Context(), rest, boolParam(r, "force"))
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, items)
	default:
		http.NotFound(w, r)
	}
}

func (s *server) imageLoad(w http.ResponseWriter, r *http.Request) {
	lines, err := s.b.ImageLoad(r.Context(), r.Body)
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	for _, l := range lines {
		_ = enc.Encode(loadStream{Stream: l + "\n"})
	}
}

// ImageList is GET /images/json.
func (c *Client) ImageList(ctx context.Context, f Filters) ([]ImageSummary, error) {
	var out []ImageSummary
	err := c.call(ctx, http.MethodGet, "/images/json", filterQuery(f), nil, &out)
	return out, err
}

// ImageInspect is GET /images/{name}/json.
func (c *Client) ImageInspect(ctx context.Context, name string) (ImageInspect, error) {
	var out ImageInspect
	err := c.call(ctx, http.MethodGet, "/images/"+name+"/json", nil, nil, &out)
	return out, err
}

// ImageTag is POST /images/{name}/tag.
func (c *Client) ImageTag(ctx context.Context, source, target string) error {
	repo, tag := target, ""
	if i := strings.LastIndex(target, ":"); i > strings.LastIndex(target, "/") {
		repo, tag = target[:i], target[i+1:]
	}
	return c.call(ctx, http.MethodPost, "/images/"+source+"/tag", url.Values{"repo": {repo}, "tag": {tag}}, nil, nil)
}

// ImageRemove is DELETE /images/{name}.
func (c *Client) ImageRemove(ctx context.Context, name string, force bool) ([]ImageDeleteItem, error) {
	var out []ImageDeleteItem
	q := url.Values{}
	if force {
		q.Set("force", "1")
	}
	err := c.call(ctx, http.MethodDelete, "/images/"+name, q, nil, &out)
	return out, err
}

// ImageLoad is POST /images/load with the archive as the body; it returns the answer's lines.
func (c *Client) ImageLoad(ctx context.Context, archive io.Reader) ([]string, error) {
	// Not bounded by c.Timeout: an archive takes as long as it takes to send.
	resp, err := c.send(ctx, http.MethodPost, "/images/load", url.Values{"quiet": {"1"}}, rawBody{archive, "application/x-tar"})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var lines []string
	dec := json.NewDecoder(resp.Body)
	for {
		var m loadStream
		if err := dec.Decode(&m); err == io.EOF {
			return lines, nil
		} else if err != nil {
			return lines, fmt.Errorf("reading the daemon's answer to load: %w", err)
		}
		if m.Error != "" {
			return lines, fmt.Errorf("%s", m.Error)
		}
		lines = append(lines, strings.TrimSuffix(m.Stream, "\n"))
	}
}

// ImageInspectWithRaw is ImageInspect with the daemon's JSON as sent, for `image inspect`.
func (c *Client) ImageInspectWithRaw(ctx context.Context, name string) (ImageInspect, []byte, error) {
	var out ImageInspect
	raw, err := c.callRaw(ctx, "/images/"+name+"/json", &out)
	return out, raw, err
}

// ImagePull is POST /images/create?fromImage=REF; each progress line goes to progress.
func (c *Client) ImagePull(ctx context.Context, ref string, progress func(Progress)) error {
	resp, err := c.send(ctx, http.MethodPost, "/images/create", url.Values{"fromImage": {ref}}, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for {
		var m progressMessage
		if err := dec.Decode(&m); err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("reading the daemon's answer to pull: %w", err)
		}
		if m.Error != "" {
			return errors.New(m.Error)
		}
		progress(m.progress())
	}
}
