package api

import (
	"context"
	"net/http"
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
