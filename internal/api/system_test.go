package api

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestNegotiation: /_ping answers GET and HEAD with Docker's headers; /version names the range;
// a path's version outside it is refused with Docker's message; an unknown endpoint gets
// Docker's 404 JSON.
func TestNegotiation(t *testing.T) {
	h := NewHandler(refusingBackend{})
	for _, tt := range []struct {
		method, path string
		status       int
		body         string
	}{
		{"GET", "/_ping", 200, "OK"},
		{"HEAD", "/_ping", 200, ""},
		{"GET", "/v1.24/_ping", 200, "OK"},
		{"GET", "/v1.43/_ping", 200, "OK"},
		{"GET", "/v1.50/_ping", 400, `{"message":"client version 1.50 is too new. Maximum supported API version is 1.43"}` + "\n"},
		{"GET", "/v1.12/networks", 400, `{"message":"client version 1.12 is too old. Minimum supported API version is 1.24, please upgrade your client to a newer version"}` + "\n"},
		{"GET", "/v1.41/nothing/here", 404, `{"message":"page not found"}` + "\n"},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(tt.method, tt.path, nil))
		if rec.Code != tt.status || rec.Body.String() != tt.body {
			t.Errorf("%s %s: %d %q, want %d %q", tt.method, tt.path, rec.Code, rec.Body.String(), tt.status, tt.body)
		}
		for k, want := range map[string]string{"Api-Version": Version, "Ostype": "linux", "Docker-Experimental": "false"} {
			if got := rec.Header().Get(k); got != want {
				t.Errorf("%s %s: header %s = %q, want %q", tt.method, tt.path, k, got, want)
			}
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/version", nil))
	var v VersionResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil || v.APIVersion != Version || v.MinAPIVersion != MinVersion ||
		v.Os != "linux" || len(v.Components) != 1 || v.Components[0].Name != "Engine" {
		t.Errorf("/version: %v %+v", err, v)
	}
}
