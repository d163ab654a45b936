package image

import (
	"net/http"
	"strings"
	"testing"
)

func TestIsLoopback(t *testing.T) {
	for reg, want := range map[string]bool{
		"localhost:5000": true, "127.0.0.1:5000": true, "127.1.2.3": true, "[::1]:5000": true,
		"10.98.0.1:5000": false, "192.168.1.10": false, "registry-1.docker.io": false, "index.docker.io": false,
	} {
		if got := isLoopback(reg); got != want {
			t.Errorf("isLoopback(%q) = %v, want %v", reg, got, want)
		}
	}
}

type okTransport struct{}

func (okTransport) RoundTrip(*http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: 200}, nil
}

// TestHTTPSOnly: plain http passes only for a registry allowed it.
func TestHTTPSOnly(t *testing.T) {
	for _, tt := range []struct {
		url   string
		plain bool
		ok    bool
	}{
		{"https://10.0.0.1/v2/", false, true},
		{"http://10.0.0.1/v2/", false, false},
		{"http://10.0.0.1/v2/", true, true},
	} {
		req, _ := http.NewRequest(http.MethodGet, tt.url, nil)
		_, err := httpsOnly{base: okTransport{}, plain: tt.plain}.RoundTrip(req)
		if (err == nil) != tt.ok {
			t.Errorf("%s plain=%v: %v", tt.url, tt.plain, err)
		}
		if err != nil && !strings.Contains(err.Error(), "--insecure-registry") {
			t.Errorf("the refusal does not name the fix: %v", err)
		}
	}
}
