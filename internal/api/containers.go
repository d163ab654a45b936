package api

import "net/http"

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
	f, err := ParseFilters(r.URL.Query().Get("filters"))
	if err != nil {
		writeError(w, err)
		return
	}
	resp, err := s.b.ContainersPrune(r.Context(), f)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}
