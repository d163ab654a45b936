package cniplugin

import (
	"bytes"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/cnet-dev/cnet/internal/api"
)

func TestVersions(t *testing.T) {
	want := []string{"0.4.0", "1.0.0", "1.1.0"}
	if got := SupportedVersions().SupportedVersions(); !reflect.DeepEqual(got, want) {
		t.Errorf("supported %v, want %v", got, want)
	}
}

func cmdArgs(conf string) *skel.CmdArgs {
	return &skel.CmdArgs{ContainerID: "ctr1", Netns: "/run/netns/x", IfName: "eth0", StdinData: []byte(conf)}
}

func confFor(host, extra string) string {
	return `{"cniVersion":"1.1.0","name":"podnet","type":"cnet","network":"web","host":"` + host + `"` + extra + `}`
}

// TestDaemonUnreachable: with no daemon at the socket, ADD and CHECK say "try again later"
// naming the socket, and STATUS says "not available" (DEL and GC are left pending:
// TestPendingWhenDown).
func TestDaemonUnreachable(t *testing.T) {
	host := "unix://" + filepath.Join(t.TempDir(), "missing.sock")
	p := &plugin{out: &bytes.Buffer{}}
	tests := []struct {
		cmd  string
		run  func(*skel.CmdArgs) error
		code uint
	}{
		{"ADD", p.add, types.ErrTryAgainLater},
		{"CHECK", p.check, types.ErrTryAgainLater},
		{"STATUS", p.status, errPluginNotAvailable},
	}
	for _, tt := range tests {
		t.Run(tt.cmd, func(t *testing.T) {
			err := tt.run(cmdArgs(confFor(host, "")))
			if code := errCode(t, err); code != tt.code {
				t.Fatalf("code %d, want %d: %v", code, tt.code, err)
			}
			if !strings.Contains(err.Error(), host) || !strings.Contains(err.Error(), "cnet daemon") {
				t.Errorf("message %q names neither the socket nor the fix", err)
			}
		})
	}
	if p.out.(*bytes.Buffer).Len() != 0 {
		t.Errorf("printed %q", p.out)
	}
}

func TestInvalidHost(t *testing.T) {
	err := (&plugin{}).add(cmdArgs(confFor("tcp://1.2.3.4:2375", "")))
	if code := errCode(t, err); code != types.ErrInvalidNetworkConfig {
		t.Fatalf("code %d: %v", code, err)
	}
}

// TestGC: without a list of valid attachments GC removes nothing and asks nothing.
func TestGC(t *testing.T) {
	dir := t.TempDir()
	host := "unix://" + filepath.Join(dir, "missing.sock")
	if err := (&plugin{}).gc(cmdArgs(confFor(host, ""))); err != nil {
		t.Errorf("GC without a list: %v, want nothing done", err)
	}
	if files, _ := api.ReadCNIPending(api.CNIPendingDir(filepath.Join(dir, "missing.sock"))); len(files) != 0 {
		t.Errorf("GC without a list left %d pending requests", len(files))
	}
}

// TestPendingWhenDown: DEL, and GC with either key, succeed with no daemon listening and leave
// the request, whole, for the daemon's next start, in the order they came.
func TestPendingWhenDown(t *testing.T) {
	dir := t.TempDir()
	socket := filepath.Join(dir, "cnet.sock")
	host := "unix://" + socket
	p := &plugin{out: &bytes.Buffer{}}
	if err := p.del(cmdArgs(confFor(host, ""))); err != nil {
		t.Fatalf("DEL with the daemon down: %v", err)
	}
	for _, key := range []string{"cni.dev/valid-attachments", "cni.dev/attachments"} {
		if err := p.gc(cmdArgs(confFor(host, `,"`+key+`":[{"containerID":"ctr2","ifname":"net1"}]`))); err != nil {
			t.Fatalf("GC with %s and the daemon down: %v", key, err)
		}
	}
	files, errs := api.ReadCNIPending(api.CNIPendingDir(socket))
	if len(errs) != 0 || len(files) != 3 {
		t.Fatalf("pending: %d files, errors %v; want 3", len(files), errs)
	}
	if d := files[0].Request.Del; d == nil || *d != (api.CNIDetachRequest{ContainerID: "ctr1", IfName: "eth0", Network: "web"}) || files[0].Request.GC != nil {
		t.Errorf("first pending request %+v, want ctr1's DEL", files[0].Request)
	}
	for _, f := range files[1:] {
		g := f.Request.GC
		if g == nil || g.Network != "web" || len(g.Valid) != 1 || g.Valid[0] != (api.CNIDetachRequest{ContainerID: "ctr2", IfName: "net1"}) {
			t.Errorf("pending request %+v, want a GC of web keeping ctr2/net1", f.Request)
		}
	}
	if p.out.(*bytes.Buffer).Len() != 0 {
		t.Errorf("printed %q", p.out)
	}
}

// TestPendingNotWhenUp: a daemon that answers with an error gets no pending request: the
// runtime retries instead.
func TestPendingNotWhenUp(t *testing.T) {
	d := newFakeDaemon(t)
	d.status["/cni/del"] = http.StatusInternalServerError
	err := (&plugin{}).del(cmdArgs(confFor(d.host, "")))
	if code := errCode(t, err); code != types.ErrInternal {
		t.Fatalf("DEL answered 500: code %d (%v)", code, err)
	}
	socket := strings.TrimPrefix(d.host, "unix://")
	if files, _ := api.ReadCNIPending(api.CNIPendingDir(socket)); len(files) != 0 {
		t.Errorf("a DEL the daemon refused left %d pending requests", len(files))
	}
}

// fakeDaemon answers the CNI endpoints on a unix socket: status per path (0 = 200 with
// answer), and records the requests.
type fakeDaemon struct {
	host   string
	mu     sync.Mutex
	status map[string]int
	answer any
	got    map[string][]byte
}

func newFakeDaemon(t *testing.T) *fakeDaemon {
	t.Helper()
	dir, err := os.MkdirTemp("", "cnicnet") // short: unix socket paths are limited to 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "d.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	d := &fakeDaemon{host: "unix://" + sock, status: map[string]int{}, got: map[string][]byte{}}
	srv := &http.Server{Handler: http.HandlerFunc(d.serve)}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return d
}

func (d *fakeDaemon) serve(w http.ResponseWriter, r *http.Request) {
	_, path, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/") // drop /v1.41
	var body bytes.Buffer
	_, _ = body.ReadFrom(r.Body)
	d.mu.Lock()
	d.got[path] = body.Bytes()
	code, answer := d.status["/"+path], d.answer
	d.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if code != 0 {
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(api.ErrorResponse{Message: "daemon says " + http.StatusText(code)})
		return
	}
	if strings.HasPrefix(path, "networks/") {
		answer = api.Network{Name: "web"}
	}
	_ = json.NewEncoder(w).Encode(answer)
}

// request is the body last sent to path, read under the lock: the race detector does not see
// the HTTP round trip as ordering the handler's write before the test's read.
func (d *fakeDaemon) request(path string) []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.got[path]
}

func TestAddAgainstDaemon(t *testing.T) {
	d := newFakeDaemon(t)
	d.answer = testAttachment
	var out bytes.Buffer
	p := &plugin{out: &out}
	args := cmdArgs(confFor(d.host, `,"runtimeConfig":{"aliases":{"podnet":["db"]},"ips":["10.0.0.5/24"],
		"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}]}`))
	args.Args = "IgnoreUnknown=1;K8S_POD_NAME=web-0"
	if err := p.add(args); err != nil {
		t.Fatal(err)
	}
	var req api.CNIAttachRequest
	if err := json.Unmarshal(d.request("cni/add"), &req); err != nil {
		t.Fatal(err)
	}
	want := api.CNIAttachRequest{ContainerID: "ctr1", Netns: "/run/netns/x", IfName: "eth0", Network: "web",
		Name: "web-0", Aliases: []string{"db"}, IP: "10.0.0.5",
		PortMappings: []api.CNIPortMapping{{HostPort: 8080, ContainerPort: 80, Protocol: "tcp"}}}
	if !reflect.DeepEqual(req, want) {
		t.Errorf("request %+v\nwant    %+v", req, want)
	}
	var res map[string]any
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("%v: %q", err, out.String())
	}
	if res["cniVersion"] != "1.1.0" || len(res["interfaces"].([]any)) != 1 {
		t.Errorf("result %s", out.Bytes())
	}
}

func TestDaemonStatusMapping(t *testing.T) {
	tests := []struct {
		name   string
		path   string
		status int
		run    func(p *plugin) func(*skel.CmdArgs) error
		code   uint // 0: success
	}{
		{"ADD unknown network", "/cni/add", http.StatusNotFound, func(p *plugin) func(*skel.CmdArgs) error { return p.add }, types.ErrInvalidNetworkConfig},
		{"ADD conflict", "/cni/add", http.StatusConflict, func(p *plugin) func(*skel.CmdArgs) error { return p.add }, types.ErrInternal},
		{"ADD unavailable", "/cni/add", http.StatusServiceUnavailable, func(p *plugin) func(*skel.CmdArgs) error { return p.add }, types.ErrTryAgainLater},
		{"DEL unknown attachment", "/cni/del", http.StatusNotFound, func(p *plugin) func(*skel.CmdArgs) error { return p.del }, 0},
		{"DEL ok", "/cni/del", 0, func(p *plugin) func(*skel.CmdArgs) error { return p.del }, 0},
		{"DEL daemon failure", "/cni/del", http.StatusInternalServerError, func(p *plugin) func(*skel.CmdArgs) error { return p.del }, types.ErrInternal},
		{"CHECK unknown attachment", "/cni/check", http.StatusNotFound, func(p *plugin) func(*skel.CmdArgs) error { return p.check }, types.ErrInternal},
		{"CHECK without prevResult", "/cni/check", 0, func(p *plugin) func(*skel.CmdArgs) error { return p.check }, 0},
		{"STATUS ok", "/networks/web", 0, func(p *plugin) func(*skel.CmdArgs) error { return p.status }, 0},
		{"STATUS unknown network", "/networks/web", http.StatusNotFound, func(p *plugin) func(*skel.CmdArgs) error { return p.status }, errPluginNotAvailable},
		{"STATUS daemon failure", "/networks/web", http.StatusInternalServerError, func(p *plugin) func(*skel.CmdArgs) error { return p.status }, errPluginNotAvailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newFakeDaemon(t)
			d.answer = testAttachment
			d.status[tt.path] = tt.status
			p := &plugin{out: &bytes.Buffer{}}
			err := tt.run(p)(cmdArgs(confFor(d.host, "")))
			if tt.code == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if code := errCode(t, err); code != tt.code {
				t.Fatalf("code %d, want %d: %v", code, tt.code, err)
			}
			if tt.status != 0 && tt.path != "/networks/web" && !strings.Contains(err.Error(), "daemon says") {
				t.Errorf("message %q lost the daemon's", err)
			}
		})
	}
}

// TestCheckAgainstDaemon: CHECK compares the daemon's attachment with the runtime's
// prevResult.
func TestCheckAgainstDaemon(t *testing.T) {
	d := newFakeDaemon(t)
	d.answer = testAttachment
	var out bytes.Buffer
	if err := (&plugin{out: &out}).add(cmdArgs(confFor(d.host, ""))); err != nil {
		t.Fatal(err)
	}
	p := &plugin{out: &bytes.Buffer{}}
	if err := p.check(cmdArgs(confFor(d.host, `,"prevResult":`+out.String()))); err != nil {
		t.Fatalf("CHECK of ADD's own result: %v", err)
	}
	moved := testAttachment
	moved.Address = "10.0.0.9/24"
	d.mu.Lock()
	d.answer = moved
	d.mu.Unlock()
	err := p.check(cmdArgs(confFor(d.host, `,"prevResult":`+out.String())))
	var te *types.Error
	if !errors.As(err, &te) || !strings.Contains(te.Msg, "10.0.0.9/24") {
		t.Fatalf("CHECK of a changed address: %v", err)
	}
}

// TestAddUndoesWhatItCannotReport: an attachment whose answer cannot become a result is
// removed again, since the runtime, seeing ADD fail, need not call DEL.
func TestAddUndoesWhatItCannotReport(t *testing.T) {
	d := newFakeDaemon(t)
	bad := testAttachment
	bad.Address = "10.0.0.5" // no prefix length
	d.answer = bad
	err := (&plugin{out: &bytes.Buffer{}}).add(cmdArgs(confFor(d.host, "")))
	if code := errCode(t, err); code != types.ErrInternal {
		t.Fatalf("code %d: %v", code, err)
	}
	var req api.CNIDetachRequest
	if err := json.Unmarshal(d.request("cni/del"), &req); err != nil {
		t.Fatalf("no DEL sent: %v", err)
	}
	if want := (api.CNIDetachRequest{ContainerID: "ctr1", IfName: "eth0", Network: "web"}); req != want {
		t.Errorf("DEL %+v, want %+v", req, want)
	}
}

// TestThroughSkel runs commands the way the binary does, from the environment and stdin, so
// that the codes chosen here are the ones the runtime reads (skel passes a *types.Error
// through and turns anything else into 999).
func TestThroughSkel(t *testing.T) {
	host := "unix://" + filepath.Join(t.TempDir(), "missing.sock")
	tests := []struct {
		cmd, conf string
		code      uint
	}{
		{"ADD", confFor(host, ""), types.ErrTryAgainLater},
		{"DEL", confFor(host, ""), 0},
		{"STATUS", confFor(host, ""), errPluginNotAvailable},
		{"GC", confFor(host, ""), 0},
		{"GC", confFor(host, `,"cni.dev/valid-attachments":[]`), 0},
		{"ADD", `{"cniVersion":"1.0.0","name":"podnet","type":"cnet"}`, types.ErrInvalidNetworkConfig},
		{"STATUS", `{"cniVersion":"1.0.0","name":"podnet","type":"cnet","network":"web"}`, types.ErrIncompatibleCNIVersion},
	}
	for _, tt := range tests {
		t.Run(tt.cmd, func(t *testing.T) {
			stdin := filepath.Join(t.TempDir(), "conf.json")
			if err := os.WriteFile(stdin, []byte(tt.conf), 0o600); err != nil {
				t.Fatal(err)
			}
			f, err := os.Open(stdin)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			saved := os.Stdin
			os.Stdin = f
			defer func() { os.Stdin = saved }()
			for k, v := range map[string]string{"CNI_COMMAND": tt.cmd, "CNI_CONTAINERID": "ctr1",
				"CNI_NETNS": "/run/netns/x", "CNI_IFNAME": "eth0", "CNI_PATH": "/opt/cni/bin"} {
				t.Setenv(k, v)
			}
			e := skel.PluginMainFuncsWithError((&plugin{out: &bytes.Buffer{}}).funcs(), SupportedVersions(), about)
			switch {
			case tt.code == 0 && e != nil:
				t.Fatal(e)
			case tt.code != 0 && (e == nil || e.Code != tt.code):
				t.Fatalf("got %v, want code %d", e, tt.code)
			}
		})
	}
}
