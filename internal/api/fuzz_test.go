package api

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cnet-dev/cnet/internal/errdefs"
	"github.com/cnet-dev/cnet/internal/events"
)

// refusingBackend answers every call with a bad-input error, so the fuzzer exercises routing,
// decoding and error answers without a daemon.
type refusingBackend struct{}

var errRefused = errdefs.Invalid("refused by the fuzzing backend")

func (refusingBackend) NetworkList(context.Context) ([]Network, error) { return nil, errRefused }
func (refusingBackend) CNIAdd(context.Context, CNIAttachRequest) (CNIAttachment, error) {
	return CNIAttachment{}, errRefused
}
func (refusingBackend) CNIDel(context.Context, CNIDetachRequest) error   { return errRefused }
func (refusingBackend) CNIGC(context.Context, CNIGCRequest) (int, error) { return 0, errRefused }
func (refusingBackend) CNICheck(context.Context, CNIDetachRequest) (CNIAttachment, error) {
	return CNIAttachment{}, errRefused
}
func (refusingBackend) NetworkInspect(context.Context, string, bool) (Network, error) {
	return Network{}, errRefused
}
func (refusingBackend) NetworkCreate(context.Context, NetworkCreateRequest) (NetworkCreateResponse, error) {
	return NetworkCreateResponse{}, errRefused
}
func (refusingBackend) NetworkRemove(context.Context, string) error { return errRefused }
func (refusingBackend) NetworkConnect(context.Context, string, NetworkConnectRequest) error {
	return errRefused
}
func (refusingBackend) NetworkDisconnect(context.Context, string, NetworkDisconnectRequest) error {
	return errRefused
}
func (refusingBackend) NetworksPrune(context.Context, Filters) (NetworksPruneResponse, error) {
	return NetworksPruneResponse{}, errRefused
}
func (refusingBackend) ContainerCreate(context.Context, string, ContainerCreateRequest) (ContainerCreateResponse, error) {
	return ContainerCreateResponse{}, errRefused
}
func (refusingBackend) ContainerStart(context.Context, string) error { return errRefused }
func (refusingBackend) ContainerAttach(context.Context, string) (Attachment, error) {
	return nil, errRefused
}
func (refusingBackend) ContainerWait(context.Context, string, string) (<-chan int, error) {
	return nil, errRefused
}
func (refusingBackend) ContainerList(context.Context, bool) ([]ContainerSummary, error) {
	return nil, errRefused
}
func (refusingBackend) ContainerInspect(context.Context, string) (ContainerJSON, error) {
	return ContainerJSON{}, errRefused
}
func (refusingBackend) ContainerStop(context.Context, string, *int) error { return errRefused }
func (refusingBackend) ContainerRemove(context.Context, string, bool) error {
	return errRefused
}
func (refusingBackend) ContainerLogs(context.Context, string, bool) (io.ReadCloser, bool, error) {
	return nil, false, errRefused
}
func (refusingBackend) ExecCreate(context.Context, string, ExecCreateRequest) (string, error) {
	return "", errRefused
}
func (refusingBackend) ExecStart(context.Context, string) (Attachment, error) { return nil, errRefused }
func (refusingBackend) ExecInspect(context.Context, string) (ExecInspect, error) {
	return ExecInspect{}, errRefused
}

// FuzzAPIHandler sends arbitrary methods, paths and bodies to the API: the server must never
// panic, must answer every request, and must answer a refusal with a 4xx and a JSON message.
func FuzzAPIHandler(f *testing.F) {
	for _, seed := range []struct{ method, path, body string }{
		{"POST", "/v1.41/networks/create", `{"Name":"n","IPAM":{"Config":[{"Subnet":"10.0.0.0/8"}]}}`},
		{"POST", "/containers/create?name=x", `{"Cmd":["sh"],"HostConfig":{"PortBindings":{"80/tcp":[{"HostPort":"8080"}]}}}`},
		{"POST", "/networks/x/connect", `{"Container":"c","EndpointConfig":{"IPAMConfig":{"IPv4Address":"10.0.0.5"}}}`},
		{"DELETE", "/containers/c?force=1", ``},
		{"POST", "/containers/c/stop?t=-5", ``},
		{"GET", "/v9/../networks", ``},
		{"POST", "/exec/x/start", `{"Detach":"yes"}`},
	} {
		f.Add(seed.method, seed.path, []byte(seed.body))
	}
	h := NewHandler(refusingBackend{})
	f.Fuzz(func(t *testing.T, method, path string, body []byte) {
		if !strings.HasPrefix(path, "/") || strings.ContainsAny(path, " \r\n\t") || method == "" || strings.ContainsAny(method, " \r\n\t/") {
			return // not something an HTTP client can send
		}
		req, err := http.NewRequest(method, "http://cnet"+path, bytes.NewReader(body))
		if err != nil {
			return
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code >= 500 {
			t.Fatalf("%s %s: status %d: %s", method, path, w.Code, w.Body)
		}
		if w.Code >= 400 && !strings.HasPrefix(w.Body.String(), "{") && w.Code != http.StatusMethodNotAllowed {
			t.Fatalf("%s %s: status %d without a JSON message: %q", method, path, w.Code, w.Body)
		}
	})
}

func (refusingBackend) ImageList(context.Context) ([]ImageSummary, error) { return nil, errRefused }
func (refusingBackend) ImageInspect(context.Context, string) (ImageInspect, error) {
	return ImageInspect{}, errRefused
}
func (refusingBackend) ImageLoad(context.Context, io.Reader) ([]string, error) {
	return nil, errRefused
}
func (refusingBackend) ImageTag(context.Context, string, string) error { return errRefused }
func (refusingBackend) ImageRemove(context.Context, string, bool) ([]ImageDeleteItem, error) {
	return nil, errRefused
}
func (refusingBackend) ImageSave(context.Context, io.Writer, []string) error { return errRefused }
func (refusingBackend) ImageImport(context.Context, io.Reader, string) (string, error) {
	return "", errRefused
}
func (refusingBackend) ImagePrune(context.Context, Filters) (ImagePruneResponse, error) {
	return ImagePruneResponse{}, errRefused
}
func (refusingBackend) ImagePull(context.Context, string, func(Progress)) error {
	return errRefused
}

func (refusingBackend) Info(context.Context) (Info, error)           { return Info{}, errRefused }
func (refusingBackend) DiskUsage(context.Context) (DiskUsage, error) { return DiskUsage{}, errRefused }

func (refusingBackend) ContainerKill(context.Context, string, string) error   { return errRefused }
func (refusingBackend) ContainerRestart(context.Context, string, *int) error  { return errRefused }
func (refusingBackend) ContainerRename(context.Context, string, string) error { return errRefused }
func (refusingBackend) ContainersPrune(context.Context, Filters) (ContainersPruneResponse, error) {
	return ContainersPruneResponse{}, errRefused
}

func (refusingBackend) SubscribeEvents(time.Time) ([]events.Message, <-chan events.Message, func()) {
	ch := make(chan events.Message)
	close(ch)
	return nil, ch, func() {}
}

func (refusingBackend) ContainerResize(context.Context, string, uint16, uint16) error {
	return errRefused
}
func (refusingBackend) ExecResize(context.Context, string, uint16, uint16) error { return errRefused }
