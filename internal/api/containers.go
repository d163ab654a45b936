package api

import (
	"context"
	"net/http"
	"strconv"

	"github.com/cnet-dev/cnet/internal/errdefs"
)

func (s *server) containerKill(w http.ResponseWriter, r *http.Request) {
	if err := s.b.ContainerKill(r.Context(), r.PathValue("id"), r.URL.Query().Get("signal")); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *server) containerRestart(w http.ResponseWriter, r *http.Request) {
	timeout, err := stopTimeout(r)
	if err != nil {
		writeError(w, err)
		return
	}
	if err := s.b.ContainerRestart(r.Context(), r.PathValue("id"), timeout); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *server) containerRename(w http.ResponseWriter, r *http.Request) {
	if err := s.b.ContainerRename(r.Context(), r.PathValue("id"), r.URL.Query().Get("name")); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *server) containersPrune(w http.ResponseWriter, r *http.Request) {
	serveFiltered(w, r, s.b.ContainersPrune)
}

// serveFiltered answers a call that takes Docker's filters parameter (the prunes) with what fn
// makes of them, as JSON.
func serveFiltered[T any](w http.ResponseWriter, r *http.Request, fn func(context.Context, Filters) (T, error)) {
	f, err := ParseFilters(r.URL.Query().Get("filters"))
	if err != nil {
		writeError(w, err)
		return
	}
	resp, err := fn(r.Context(), f)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// resize serves POST …/resize?h=ROWS&w=COLS for a container or an exec.
func (s *server) resize(fn func(context.Context, string, uint16, uint16) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		rows, err1 := strconv.ParseUint(q.Get("h"), 10, 16)
		cols, err2 := strconv.ParseUint(q.Get("w"), 10, 16)
		if err1 != nil || err2 != nil {
			writeError(w, errdefs.Invalid("invalid terminal size h=%q w=%q: want whole numbers of rows and columns", q.Get("h"), q.Get("w")))
			return
		}
		if err := fn(r.Context(), r.PathValue("id"), uint16(rows), uint16(cols)); err != nil {
			writeError(w, err)
			return
		}
		w.WriteHeader(http.StatusOK)
	}
}
