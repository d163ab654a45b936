package cli

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/cnet-dev/cnet/internal/api"
)

// fakeDaemon answers the API on a unix socket with canned behaviour, to test what the CLI
// sends and prints. It runs no containers and configures no network: its "processes" are a
// few shell-like statements interpreted in memory.
type fakeDaemon struct {
	sock string

	mu         sync.Mutex
	calls      []string
	networks   []api.Network
	netCreates []api.NetworkCreateRequest
	connects   []api.NetworkConnectRequest
	containers []*fakeContainer
	execs      map[string]*fakeExec
}

type fakeContainer struct {
	id, name string
	req      api.ContainerCreateRequest
	conn     net.Conn
	in       *bufio.Reader
	exit     chan int
}

type fakeExec struct {
	req      api.ExecCreateRequest
	exitCode *int
}

func newFakeDaemon(t *testing.T) *fakeDaemon {
	d := &fakeDaemon{sock: filepath.Join(t.TempDir(), "cnet.sock"), execs: map[string]*fakeExec{}}
	for _, n := range []struct{ name, driver string }{{"bridge", "bridge"}, {"host", "host"}, {"none", "null"}} {
		d.networks = append(d.networks, api.Network{Name: n.name, ID: fakeID(n.name), Driver: n.driver, Scope: "local",
			IPAM: api.IPAM{Driver: "default"}, Containers: map[string]api.EndpointResource{}, Labels: map[string]string{}})
	}
	ln, err := net.Listen("unix", d.sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: d.routes()}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return d
}

// cli runs one cnet command line against the fake and returns what it printed and its code.
func (d *fakeDaemon) cli(stdin string, args ...string) (stdout, stderr string, code int) {
	root := NewRootCommand()
	root.SetArgs(append([]string{"-H", "unix://" + d.sock}, args...))
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetIn(strings.NewReader(stdin))
	code = Execute(root)
	return out.String(), errOut.String(), code
}

func (d *fakeDaemon) record(call string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls = append(d.calls, call)
}

func (d *fakeDaemon) callLog() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.calls...)
}

func fakeID(seed string) string {
	sum := sha256.Sum256([]byte(seed))
	return hex.EncodeToString(sum[:])
}

func fail(w http.ResponseWriter, status int, format string, args ...any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(api.ErrorResponse{Message: fmt.Sprintf(format, args...)})
}

func reply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (d *fakeDaemon) network(ref string) int {
	for i, n := range d.networks {
		if n.Name == ref || strings.HasPrefix(n.ID, ref) {
			return i
		}
	}
	return -1
}

func (d *fakeDaemon) container(ref string) *fakeContainer {
	for _, c := range d.containers {
		if ref != "" && (c.name == ref || strings.HasPrefix(c.id, ref)) {
			return c
		}
	}
	return nil
}

func (d *fakeDaemon) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v"+api.Version+"/networks", func(w http.ResponseWriter, r *http.Request) {
		d.mu.Lock()
		defer d.mu.Unlock()
		f, err := api.ParseFilters(r.URL.Query().Get("filters"))
		var nets []api.Network
		if err == nil {
			nets, err = api.FilterNetworks(f, d.networks, nil)
		}
		if err != nil {
			reply(w, 400, api.ErrorResponse{Message: err.Error()})
			return
		}
		reply(w, 200, nets)
	})
	mux.HandleFunc("GET /v"+api.Version+"/networks/{id}", func(w http.ResponseWriter, r *http.Request) {
		d.mu.Lock()
		defer d.mu.Unlock()
		i := d.network(r.PathValue("id"))
		if i < 0 {
			fail(w, 404, "network %s not found", r.PathValue("id"))
			return
		}
		reply(w, 200, d.networks[i])
	})
	mux.HandleFunc("POST /v"+api.Version+"/networks/create", func(w http.ResponseWriter, r *http.Request) {
		var req api.NetworkCreateRequest
		_ = json.NewDecoder(r.Body).Decode(&req)
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.network(req.Name) >= 0 {
			fail(w, 409, "network with name %s already exists", req.Name)
			return
		}
		d.netCreates = append(d.netCreates, req)
		d.networks = append(d.networks, api.Network{Name: req.Name, ID: fakeID(req.Name), Driver: req.Driver, Scope: "local"})
		reply(w, 201, api.NetworkCreateResponse{ID: fakeID(req.Name)})
	})
	mux.HandleFunc("DELETE /v"+api.Version+"/networks/{id}", func(w http.ResponseWriter, r *http.Request) {
		d.mu.Lock()
		defer d.mu.Unlock()
		i := d.network(r.PathValue("id"))
		if i < 0 {
			fail(w, 404, "network %s not found", r.PathValue("id"))
			return
		}
		d.networks = append(d.networks[:i], d.networks[i+1:]...)
		w.WriteHeader(204)
	})
	mux.HandleFunc("POST /v"+api.Version+"/networks/prune", func(w http.ResponseWriter, r *http.Request) {
		d.mu.Lock()
		defer d.mu.Unlock()
		var kept []api.Network
		var deleted []string
		for _, n := range d.networks {
			if isBuiltinNetwork(n.Name) {
				kept = append(kept, n)
			} else {
				deleted = append(deleted, n.Name)
			}
		}
		d.networks = kept
		reply(w, 200, api.NetworksPruneResponse{NetworksDeleted: deleted})
	})
	mux.HandleFunc("POST /v"+api.Version+"/networks/{id}/connect", func(w http.ResponseWriter, r *http.Request) {
		var req api.NetworkConnectRequest
		_ = json.NewDecoder(r.Body).Decode(&req)
		d.mu.Lock()
		defer d.mu.Unlock()
		d.connects = append(d.connects, req)
		w.WriteHeader(200)
	})
	d.containerRoutes(mux)
	return mux
}

func (d *fakeDaemon) containerRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /v"+api.Version+"/containers/create", func(w http.ResponseWriter, r *http.Request) {
		var req api.ContainerCreateRequest
		_ = json.NewDecoder(r.Body).Decode(&req)
		d.record("create")
		d.mu.Lock()
		defer d.mu.Unlock()
		mode := req.HostConfig.NetworkMode
		if mode != "default" && d.network(mode) < 0 {
			fail(w, 404, "network %s not found", mode)
			return
		}
		name := r.URL.Query().Get("name")
		c := &fakeContainer{id: fakeID(fmt.Sprintf("container %d %s", len(d.containers), name)), name: name, req: req, exit: make(chan int, 1)}
		d.containers = append(d.containers, c)
		reply(w, 201, api.ContainerCreateResponse{ID: c.id, Warnings: []string{}})
	})
	withContainer := func(h func(http.ResponseWriter, *http.Request, *fakeContainer)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			d.mu.Lock()
			c := d.container(r.PathValue("id"))
			d.mu.Unlock()
			if c == nil {
				fail(w, 404, "No such container: %s", r.PathValue("id"))
				return
			}
			h(w, r, c)
		}
	}
	mux.HandleFunc("POST /v"+api.Version+"/containers/{id}/attach", withContainer(func(w http.ResponseWriter, r *http.Request, c *fakeContainer) {
		d.record("attach")
		conn, in := d.hijack(w)
		// Registered before the client hears 101, as the daemon does: start may follow at once.
		d.mu.Lock()
		c.conn, c.in = conn, in
		d.mu.Unlock()
		announce(conn, c.req.Tty)
	}))
	mux.HandleFunc("POST /v"+api.Version+"/containers/{id}/wait", withContainer(func(w http.ResponseWriter, r *http.Request, c *fakeContainer) {
		d.record("wait " + r.URL.Query().Get("condition"))
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		_ = json.NewEncoder(w).Encode(api.ContainerWaitResponse{StatusCode: <-c.exit})
	}))
	mux.HandleFunc("POST /v"+api.Version+"/containers/{id}/start", withContainer(func(w http.ResponseWriter, r *http.Request, c *fakeContainer) {
		d.record("start")
		switch c.req.Cmd[0] {
		case "sh", "echo", "cat", "exit":
		default:
			fail(w, 400, "failed to start %s: exec: %q: executable file not found in $PATH", c.name, c.req.Cmd[0])
			return
		}
		d.mu.Lock()
		conn, in := c.conn, c.in
		d.mu.Unlock()
		go func() {
			var stdin io.Reader = strings.NewReader("")
			stdout, stderr := io.Discard, io.Discard
			if conn != nil {
				stdout, stderr = outputs(conn, c.req.Tty)
				if c.req.OpenStdin {
					stdin = in
				}
			}
			code := fakeProcess(c.req.Cmd, stdin, stdout, stderr)
			if conn != nil {
				conn.Close()
			}
			c.exit <- code
		}()
		w.WriteHeader(204)
	}))
	mux.HandleFunc("POST /v"+api.Version+"/containers/{id}/stop", withContainer(func(w http.ResponseWriter, r *http.Request, c *fakeContainer) {
		d.record("stop t=" + r.URL.Query().Get("t"))
		w.WriteHeader(204)
	}))
	mux.HandleFunc("DELETE /v"+api.Version+"/containers/{id}", withContainer(func(w http.ResponseWriter, r *http.Request, c *fakeContainer) {
		d.record("rm force=" + r.URL.Query().Get("force"))
		w.WriteHeader(204)
	}))
	mux.HandleFunc("GET /v"+api.Version+"/containers/{id}/json", withContainer(func(w http.ResponseWriter, r *http.Request, c *fakeContainer) {
		reply(w, 200, api.ContainerJSON{ID: c.id, Name: "/" + c.name, State: &api.ContainerState{Status: "running", Running: true, Pid: 4242},
			NetworkSettings: &api.NetworkSettings{IPAddress: "172.17.0.2", Networks: map[string]*api.EndpointSettings{"bridge": {IPAddress: "172.17.0.2"}}}})
	}))
	mux.HandleFunc("GET /v"+api.Version+"/containers/{id}/logs", withContainer(func(w http.ResponseWriter, r *http.Request, c *fakeContainer) {
		w.Header().Set("Content-Type", api.MediaTypeMultiplexedStream)
		stdout, stderr := api.NewFrameWriters(w)
		fmt.Fprintln(stdout, "logged out")
		fmt.Fprintln(stderr, "logged err")
	}))
	mux.HandleFunc("POST /v"+api.Version+"/containers/{id}/exec", withContainer(func(w http.ResponseWriter, r *http.Request, c *fakeContainer) {
		var req api.ExecCreateRequest
		_ = json.NewDecoder(r.Body).Decode(&req)
		id := fakeID("exec " + strings.Join(req.Cmd, " "))
		d.mu.Lock()
		d.execs[id] = &fakeExec{req: req}
		d.mu.Unlock()
		reply(w, 201, api.IDResponse{ID: id})
	}))
	mux.HandleFunc("POST /v"+api.Version+"/exec/{id}/start", func(w http.ResponseWriter, r *http.Request) {
		var start api.ExecStartRequest
		if err := json.NewDecoder(r.Body).Decode(&start); err != nil {
			fail(w, 400, "bad exec start request: %v", err)
			return
		}
		d.mu.Lock()
		e := d.execs[r.PathValue("id")]
		d.mu.Unlock()
		conn, in := d.hijack(w)
		announce(conn, start.Tty)
		stdout, stderr := outputs(conn, e.req.Tty)
		code := fakeProcess(e.req.Cmd, in, stdout, stderr)
		conn.Close()
		d.mu.Lock()
		e.exitCode = &code
		d.mu.Unlock()
	})
	mux.HandleFunc("GET /v"+api.Version+"/exec/{id}/json", func(w http.ResponseWriter, r *http.Request) {
		d.mu.Lock()
		defer d.mu.Unlock()
		e := d.execs[r.PathValue("id")]
		reply(w, 200, api.ExecInspect{ID: r.PathValue("id"), Running: e.exitCode == nil, ExitCode: e.exitCode})
	})
}

// hijack takes the connection over; its buffered reader may already hold stdin.
func (d *fakeDaemon) hijack(w http.ResponseWriter) (net.Conn, *bufio.Reader) {
	conn, brw, err := w.(http.Hijacker).Hijack()
	if err != nil {
		panic(fmt.Sprintf("the test server cannot hijack: %v", err)) // net/http's server always can
	}
	return conn, brw.Reader
}

// announce answers 101 as the daemon does.
func announce(conn net.Conn, tty bool) {
	ct := api.MediaTypeMultiplexedStream
	if tty {
		ct = api.MediaTypeRawStream
	}
	fmt.Fprintf(conn, "HTTP/1.1 101 UPGRADED\r\nContent-Type: %s\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n", ct)
}

func outputs(conn net.Conn, tty bool) (stdout, stderr io.Writer) {
	if tty {
		return conn, conn
	}
	return api.NewFrameWriters(conn)
}

// fakeProcess interprets `sh -c 'stmt; stmt'` or a single statement, where a statement is
// `echo WORDS [>&2]`, `cat` or `exit N`, and returns the exit code.
func fakeProcess(cmd []string, stdin io.Reader, stdout, stderr io.Writer) int {
	stmts := [][]string{cmd}
	if len(cmd) == 3 && cmd[0] == "sh" && cmd[1] == "-c" {
		stmts = nil
		for _, s := range strings.Split(cmd[2], ";") {
			stmts = append(stmts, strings.Fields(s))
		}
	}
	for _, s := range stmts {
		switch s[0] {
		case "echo":
			out := stdout
			if s[len(s)-1] == ">&2" {
				out, s = stderr, s[:len(s)-1]
			}
			fmt.Fprintln(out, strings.Join(s[1:], " "))
		case "cat":
			_, _ = io.Copy(stdout, stdin)
		case "exit":
			n, _ := strconv.Atoi(s[1])
			return n
		}
	}
	return 0
}
