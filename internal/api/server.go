package api

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"strconv"

	"github.com/cnet-dev/cnet/internal/errdefs"
)

// maxBody bounds request bodies: every request cnet takes is small, and a client must not be
// able to make the daemon buffer gigabytes.
const maxBody = 1 << 20

var versionPrefix = regexp.MustCompile(`^/v[0-9]+(\.[0-9]+)?/`)

// NewHandler routes the Docker-shaped endpoints to b.
func NewHandler(b Backend) http.Handler {
	s := &server{b: b}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /_ping", ping)
	mux.HandleFunc("HEAD /_ping", ping)
	mux.HandleFunc("GET /version", version)
	mux.HandleFunc("GET /info", s.info)
	mux.HandleFunc("GET /system/df", s.diskUsage)
	mux.HandleFunc("GET /events", s.events)

	mux.HandleFunc("GET /networks", s.networkList)
	mux.HandleFunc("GET /networks/{id}", s.networkInspect)
	mux.HandleFunc("POST /networks/create", s.networkCreate)
	mux.HandleFunc("DELETE /networks/{id}", s.networkRemove)
	mux.HandleFunc("POST /networks/{id}/connect", s.networkConnect)
	mux.HandleFunc("POST /networks/{id}/disconnect", s.networkDisconnect)
	mux.HandleFunc("POST /networks/prune", s.networksPrune)
	mux.HandleFunc("POST /cni/add", s.cniAdd)
	mux.HandleFunc("POST /cni/del", s.cniDel)
	mux.HandleFunc("POST /cni/check", s.cniCheck)
	mux.HandleFunc("POST /cni/gc", s.cniGC)

	mux.HandleFunc("GET /images/json", s.imageList)
	mux.HandleFunc("POST /images/load", s.imageLoad)
	mux.HandleFunc("GET /images/get", s.imageSave)
	mux.HandleFunc("POST /images/create", s.imageCreate)
	mux.HandleFunc("POST /images/prune", s.imagePrune)
	mux.HandleFunc("/images/", s.imageByName)
	mux.HandleFunc("POST /containers/create", s.containerCreate)
	mux.HandleFunc("GET /containers/json", s.containerList)
	mux.HandleFunc("GET /containers/{id}/json", s.containerInspect)
	mux.HandleFunc("POST /containers/{id}/start", s.containerStart)
	mux.HandleFunc("POST /containers/{id}/attach", s.containerAttach)
	mux.HandleFunc("POST /containers/{id}/wait", s.containerWait)
	mux.HandleFunc("POST /containers/{id}/stop", s.containerStop)
	mux.HandleFunc("DELETE /containers/{id}", s.containerRemove)
	mux.HandleFunc("POST /containers/{id}/kill", s.containerKill)
	mux.HandleFunc("POST /containers/{id}/restart", s.containerRestart)
	mux.HandleFunc("POST /containers/{id}/rename", s.containerRename)
	mux.HandleFunc("POST /containers/{id}/resize", s.resize(s.b.ContainerResize))
	mux.HandleFunc("POST /exec/{id}/resize", s.resize(s.b.ExecResize))
	mux.HandleFunc("POST /containers/prune", s.containersPrune)
	mux.HandleFunc("GET /containers/{id}/logs", s.containerLogs)
	mux.HandleFunc("POST /containers/{id}/exec", s.execCreate)
	mux.HandleFunc("POST /exec/{id}/start", s.execStart)
	mux.HandleFunc("GET /exec/{id}/json", s.execInspect)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, ErrorResponse{Message: "page not found"})
	})

	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		setEngineHeaders(w.Header())
		if loc := versionPrefix.FindStringIndex(r.URL.Path); loc != nil {
			if err := checkVersion(r.URL.Path[2 : loc[1]-1]); err != nil {
				writeJSON(w, http.StatusBadRequest, ErrorResponse{Message: err.Error()})
				return
			}
			r.URL.Path = r.URL.Path[loc[1]-1:]
		}
		if r.URL.Path != "/images/load" && r.URL.Path != "/images/create" { // an archive is as large as its images
			r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		}
		mux.ServeHTTP(w, r)
	})
}

type server struct{ b Backend }

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError answers with Docker's status for the error's kind and its message.
func writeError(w http.ResponseWriter, err error) {
	status := http.StatusInternalServerError
	switch errdefs.KindOf(err) {
	case errdefs.KindInvalid:
		status = http.StatusBadRequest
	case errdefs.KindNotFound:
		status = http.StatusNotFound
	case errdefs.KindConflict:
		status = http.StatusConflict
	case errdefs.KindForbidden:
		status = http.StatusForbidden
	case errdefs.KindUnavailable:
		status = http.StatusServiceUnavailable
	}
	if status == http.StatusInternalServerError {
		slog.Error("request failed", "err", err)
	}
	writeJSON(w, status, ErrorResponse{Message: err.Error()})
}

// decode reads a JSON body into v; an empty body leaves v as it is.
func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return errdefs.Invalid("request body larger than %d bytes", maxBody)
		}
		return errdefs.Invalid("invalid JSON in request body: %v", err)
	}
	return nil
}

func boolParam(r *http.Request, name string) bool {
	v, _ := strconv.ParseBool(r.URL.Query().Get(name))
	return v
}

func (s *server) networkList(w http.ResponseWriter, r *http.Request) {
	f, err := ParseFilters(r.URL.Query().Get("filters"))
	if err != nil {
		writeError(w, err)
		return
	}
	nets, err := s.b.NetworkList(r.Context())
	if err == nil {
		nets, err = FilterNetworks(f, nets, func(n Network) (int, bool) {
			full, err := s.b.NetworkInspect(r.Context(), n.ID, false)
			return len(full.Containers), err == nil
		})
	}
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, nets)
}

func (s *server) networkInspect(w http.ResponseWriter, r *http.Request) {
	verbose, _ := strconv.ParseBool(r.URL.Query().Get("verbose"))
	n, err := s.b.NetworkInspect(r.Context(), r.PathValue("id"), verbose)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, n)
}

func (s *server) networkCreate(w http.ResponseWriter, r *http.Request) {
	var req NetworkCreateRequest
	if err := decode(r, &req); err != nil {
		writeError(w, err)
		return
	}
	resp, err := s.b.NetworkCreate(r.Context(), req)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, resp)
}

func (s *server) networkRemove(w http.ResponseWriter, r *http.Request) {
	if err := s.b.NetworkRemove(r.Context(), r.PathValue("id")); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *server) networkConnect(w http.ResponseWriter, r *http.Request) {
	var req NetworkConnectRequest
	if err := decode(r, &req); err != nil {
		writeError(w, err)
		return
	}
	if err := s.b.NetworkConnect(r.Context(), r.PathValue("id"), req); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (s *server) networkDisconnect(w http.ResponseWriter, r *http.Request) {
	var req NetworkDisconnectRequest
	if err := decode(r, &req); err != nil {
		writeError(w, err)
		return
	}
	if err := s.b.NetworkDisconnect(r.Context(), r.PathValue("id"), req); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (s *server) networksPrune(w http.ResponseWriter, r *http.Request) {
	serveFiltered(w, r, s.b.NetworksPrune)
}

func (s *server) containerCreate(w http.ResponseWriter, r *http.Request) {
	var req ContainerCreateRequest
	if err := decode(r, &req); err != nil {
		writeError(w, err)
		return
	}
	resp, err := s.b.ContainerCreate(r.Context(), r.URL.Query().Get("name"), req)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, resp)
}

func (s *server) containerList(w http.ResponseWriter, r *http.Request) {
	f, err := ParseFilters(r.URL.Query().Get("filters"))
	if err != nil {
		writeError(w, err)
		return
	}
	// A status or exited filter, or a limit (ps -n, --last), looks at stopped containers
	// too, as in Docker.
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	all := boolParam(r, "all") || f.Has("status") || f.Has("exited") || limit > 0
	list, err := s.b.ContainerList(r.Context(), all)
	if err == nil {
		list, err = filterContainers(f, list)
	}
	if err != nil {
		writeError(w, err)
		return
	}
	if limit > 0 && limit < len(list) {
		list = list[:limit]
	}
	writeJSON(w, http.StatusOK, list)
}

func (s *server) containerInspect(w http.ResponseWriter, r *http.Request) {
	c, err := s.b.ContainerInspect(r.Context(), r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, c)
}

func (s *server) containerStart(w http.ResponseWriter, r *http.Request) {
	if err := s.b.ContainerStart(r.Context(), r.PathValue("id")); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *server) containerWait(w http.ResponseWriter, r *http.Request) {
	ch, err := s.b.ContainerWait(r.Context(), r.PathValue("id"), r.URL.Query().Get("condition"))
	if err != nil {
		writeError(w, err)
		return
	}
	// The headers tell the client its wait is registered; the body follows at the exit.
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	select {
	case code := <-ch:
		_ = json.NewEncoder(w).Encode(ContainerWaitResponse{StatusCode: code})
	case <-r.Context().Done():
	}
}

// stopTimeout reads stop's and restart's t parameter (whole seconds; nil for the default).
func stopTimeout(r *http.Request) (*int, error) {
	t := r.URL.Query().Get("t")
	if t == "" {
		return nil, nil
	}
	v, err := strconv.Atoi(t)
	if err != nil || v < -1 {
		return nil, errdefs.Invalid("invalid stop timeout %q: want whole seconds", t)
	}
	return &v, nil
}

func (s *server) containerStop(w http.ResponseWriter, r *http.Request) {
	timeout, err := stopTimeout(r)
	if err != nil {
		writeError(w, err)
		return
	}
	if err := s.b.ContainerStop(r.Context(), r.PathValue("id"), timeout); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *server) containerRemove(w http.ResponseWriter, r *http.Request) {
	if err := s.b.ContainerRemove(r.Context(), r.PathValue("id"), boolParam(r, "force")); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *server) containerLogs(w http.ResponseWriter, r *http.Request) {
	rc, tty, err := s.b.ContainerLogs(r.Context(), r.PathValue("id"), boolParam(r, "follow"))
	if err != nil {
		writeError(w, err)
		return
	}
	defer rc.Close()
	w.Header().Set("Content-Type", mediaType(tty))
	w.WriteHeader(http.StatusOK)
	// Each piece goes out as it is read, so that a follower sees output as it comes.
	_, _ = io.Copy(flushWriter{w}, rc)
}

// flushWriter flushes after every write (a followed log, a stream of events).
type flushWriter struct{ w http.ResponseWriter }

func (f flushWriter) Write(p []byte) (int, error) {
	n, err := f.w.Write(p)
	if fl, ok := f.w.(http.Flusher); ok {
		fl.Flush()
	}
	return n, err
}

func (s *server) containerAttach(w http.ResponseWriter, r *http.Request) {
	a, err := s.b.ContainerAttach(r.Context(), r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	serveUpgraded(w, a)
}

func (s *server) execCreate(w http.ResponseWriter, r *http.Request) {
	var req ExecCreateRequest
	if err := decode(r, &req); err != nil {
		writeError(w, err)
		return
	}
	id, err := s.b.ExecCreate(r.Context(), r.PathValue("id"), req)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, IDResponse{ID: id})
}

func (s *server) execStart(w http.ResponseWriter, r *http.Request) {
	var req ExecStartRequest
	if err := decode(r, &req); err != nil {
		writeError(w, err)
		return
	}
	a, err := s.b.ExecStart(r.Context(), r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	serveUpgraded(w, a)
}

func (s *server) execInspect(w http.ResponseWriter, r *http.Request) {
	e, err := s.b.ExecInspect(r.Context(), r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, e)
}

func mediaType(tty bool) string {
	if tty {
		return MediaTypeRawStream
	}
	return MediaTypeMultiplexedStream
}

// serveUpgraded takes over the connection, answers 101 as Docker does and hands the raw
// connection to the attachment.
func serveUpgraded(w http.ResponseWriter, a Attachment) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		writeError(w, errors.New("connection cannot be upgraded to a stream"))
		return
	}
	conn, buf, err := hj.Hijack()
	if err != nil {
		slog.Error("hijacking the connection", "err", err)
		return
	}
	defer conn.Close()
	fmt.Fprintf(buf, "HTTP/1.1 101 UPGRADED\r\nContent-Type: %s\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n", mediaType(a.Tty()))
	if err := buf.Flush(); err != nil {
		return
	}
	if err := a.Serve(&hijackedConn{Conn: conn, r: buf.Reader}); err != nil {
		slog.Debug("stream ended", "err", err)
	}
}

// hijackedConn reads first what the HTTP server had already buffered (stdin the client sent
// right behind its request), and keeps half-close available to the attachment.
type hijackedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *hijackedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// CloseWrite half-closes the connection so the client sees the end of the output while it may
// still be sending.
func (c *hijackedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}

func (s *server) cniAdd(w http.ResponseWriter, r *http.Request) {
	var req CNIAttachRequest
	if err := decode(r, &req); err != nil {
		writeError(w, err)
		return
	}
	out, err := s.b.CNIAdd(r.Context(), req)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *server) cniDel(w http.ResponseWriter, r *http.Request) {
	var req CNIDetachRequest
	if err := decode(r, &req); err != nil {
		writeError(w, err)
		return
	}
	if err := s.b.CNIDel(r.Context(), req); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *server) cniCheck(w http.ResponseWriter, r *http.Request) {
	var req CNIDetachRequest
	if err := decode(r, &req); err != nil {
		writeError(w, err)
		return
	}
	out, err := s.b.CNICheck(r.Context(), req)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *server) cniGC(w http.ResponseWriter, r *http.Request) {
	var req CNIGCRequest
	if err := decode(r, &req); err != nil {
		writeError(w, err)
		return
	}
	n, err := s.b.CNIGC(r.Context(), req)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, struct{ Removed int }{n})
}
