package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// serveUnix runs handler on a unix socket in a temporary directory and returns a client for it.
func serveUnix(t *testing.T, handler http.Handler) *Client {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "d.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: handler}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	c, err := NewClient("unix://" + sock)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func writeTestJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func TestClientJSONRoundTrips(t *testing.T) {
	type seen struct{ method, uri, body string }
	var got []seen
	mux := http.NewServeMux()
	record := func(r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got = append(got, seen{r.Method, r.URL.RequestURI(), strings.TrimSpace(string(b))})
	}
	mux.HandleFunc("POST /v"+Version+"/networks/create", func(w http.ResponseWriter, r *http.Request) {
		record(r)
		writeTestJSON(w, http.StatusCreated, NetworkCreateResponse{ID: strings.Repeat("a", 64)})
	})
	mux.HandleFunc("GET /v"+Version+"/networks", func(w http.ResponseWriter, r *http.Request) {
		record(r)
		writeTestJSON(w, http.StatusOK, []Network{{Name: "bridge", Driver: "bridge"}})
	})
	mux.HandleFunc("GET /v"+Version+"/networks/{id}", func(w http.ResponseWriter, r *http.Request) {
		record(r)
		_, _ = io.WriteString(w, `{"Name":"my net","Id":"abc","Options":null,"Labels":{}}`)
	})
	mux.HandleFunc("POST /v"+Version+"/containers/create", func(w http.ResponseWriter, r *http.Request) {
		record(r)
		writeTestJSON(w, http.StatusCreated, ContainerCreateResponse{ID: "c1"})
	})
	mux.HandleFunc("GET /v"+Version+"/containers/json", func(w http.ResponseWriter, r *http.Request) {
		record(r)
		writeTestJSON(w, http.StatusOK, []ContainerSummary{{ID: "c1", Names: []string{"/web"}}})
	})
	mux.HandleFunc("POST /v"+Version+"/containers/{id}/stop", func(w http.ResponseWriter, r *http.Request) {
		record(r)
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("DELETE /v"+Version+"/containers/{id}", func(w http.ResponseWriter, r *http.Request) {
		record(r)
		w.WriteHeader(http.StatusNoContent)
	})
	c := serveUnix(t, mux)
	ctx := context.Background()

	cr, err := c.NetworkCreate(ctx, NetworkCreateRequest{Name: "n1", Driver: "bridge", CheckDuplicate: true})
	if err != nil || cr.ID != strings.Repeat("a", 64) {
		t.Fatalf("NetworkCreate = %+v, %v", cr, err)
	}
	nets, err := c.NetworkList(ctx, nil)
	if err != nil || len(nets) != 1 || nets[0].Name != "bridge" {
		t.Fatalf("NetworkList = %+v, %v", nets, err)
	}
	n, raw, err := c.NetworkInspectWithRaw(ctx, "my net")
	if err != nil || n.Name != "my net" || n.Options != nil || n.Labels == nil {
		t.Fatalf("NetworkInspectWithRaw = %+v, %v", n, err)
	}
	if !strings.Contains(string(raw), `"Options":null`) {
		t.Errorf("raw answer not kept as sent: %s", raw)
	}
	if _, err := c.ContainerCreate(ctx, "web", ContainerCreateRequest{ContainerConfig: ContainerConfig{Cmd: []string{"sh"}}}); err != nil {
		t.Fatal(err)
	}
	list, err := c.ContainerList(ctx, true, nil)
	if err != nil || len(list) != 1 || list[0].Names[0] != "/web" {
		t.Fatalf("ContainerList = %+v, %v", list, err)
	}
	five := 5
	if err := c.ContainerStop(ctx, "web", &five); err != nil {
		t.Fatal(err)
	}
	if err := c.ContainerRemove(ctx, "web", true); err != nil {
		t.Fatal(err)
	}

	want := []seen{
		{"POST", "/v" + Version + "/networks/create", `{"Name":"n1","CheckDuplicate":true,"Driver":"bridge"}`},
		{"GET", "/v" + Version + "/networks", ""},
		{"GET", "/v" + Version + "/networks/my%20net", ""},
		{"POST", "/v" + Version + "/containers/create?name=web", `{"Hostname":"","Domainname":"","User":"","AttachStdin":false,"AttachStdout":false,"AttachStderr":false,"Tty":false,"OpenStdin":false,"StdinOnce":false,"Env":null,"Cmd":["sh"],"Entrypoint":null,"Image":"","WorkingDir":"","Labels":null}`},
		{"GET", "/v" + Version + "/containers/json?all=1", ""},
		{"POST", "/v" + Version + "/containers/web/stop?t=5", ""},
		{"DELETE", "/v" + Version + "/containers/web?force=1", ""},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("requests:\n got %q\nwant %q", got, want)
	}
}

func TestClientStatusError(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v"+Version+"/networks/{id}", func(w http.ResponseWriter, r *http.Request) {
		writeTestJSON(w, http.StatusNotFound, ErrorResponse{Message: "network nope not found"})
	})
	mux.HandleFunc("DELETE /v"+Version+"/networks/{id}", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "plain text failure", http.StatusInternalServerError)
	})
	c := serveUnix(t, mux)

	_, err := c.NetworkInspect(context.Background(), "nope")
	var se *StatusError
	if !errors.As(err, &se) || se.Status != 404 || err.Error() != "network nope not found" {
		t.Fatalf("got %#v (%v), want a 404 StatusError with the daemon's message", err, err)
	}
	err = c.NetworkRemove(context.Background(), "x")
	if !errors.As(err, &se) || se.Status != 500 || se.Message != "plain text failure" {
		t.Fatalf("got %#v, want a 500 StatusError carrying the body", err)
	}
}

func TestClientConnectErrors(t *testing.T) {
	dir := t.TempDir()
	missing := "unix://" + filepath.Join(dir, "missing.sock")

	// A socket file nobody listens on any more: connection refused.
	stale := filepath.Join(dir, "stale.sock")
	ln, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()

	for _, host := range []string{missing, "unix://" + stale} {
		c, err := NewClient(host)
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.NetworkList(context.Background(), nil)
		want := fmt.Sprintf("cannot connect to the cnet daemon at %s: is it running?", host)
		if err == nil || err.Error() != want {
			t.Errorf("%s: got %v, want %q", host, err, want)
		}
		var ce *ConnectError
		if !errors.As(err, &ce) {
			t.Errorf("%s: %T is not a *ConnectError", host, err)
		}
		if _, err := c.ContainerAttach(context.Background(), "x"); err == nil || err.Error() != want {
			t.Errorf("attach to %s: got %v, want %q", host, err, want)
		}
	}
}

func TestNewClientRejectsOtherSchemes(t *testing.T) {
	for _, host := range []string{"tcp://127.0.0.1:2375", "/run/cnet/cnet.sock", "unix://"} {
		if _, err := NewClient(host); err == nil {
			t.Errorf("NewClient(%q) accepted", host)
		}
	}
	c, err := NewClient("")
	if err != nil || c.Host() != DefaultHost {
		t.Fatalf("NewClient(\"\") = %v, %v; want the default host", c, err)
	}
}

// upgrade takes over an HTTP connection the way the daemon's attach and exec handlers do.
func upgrade(t *testing.T, w http.ResponseWriter, contentType string) net.Conn {
	conn, _, err := w.(http.Hijacker).Hijack()
	if err != nil {
		t.Error(err)
		return nil
	}
	fmt.Fprintf(conn, "HTTP/1.1 101 UPGRADED\r\nContent-Type: %s\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n", contentType)
	return conn
}

func TestClientHijackBothWays(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v"+Version+"/containers/{id}/attach", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "tcp" || r.URL.Query().Get("stdin") != "1" {
			http.Error(w, "bad attach request", http.StatusBadRequest)
			return
		}
		conn := upgrade(t, w, MediaTypeMultiplexedStream)
		defer conn.Close()
		stdout, stderr := NewFrameWriters(conn)
		_, _ = io.WriteString(stderr, "ready\n")
		in, _ := io.ReadAll(conn) // until the client's CloseWrite
		_, _ = stdout.Write(bytes.ToUpper(in))
	})
	mux.HandleFunc("POST /v"+Version+"/exec/{id}/start", func(w http.ResponseWriter, r *http.Request) {
		var req ExecStartRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || !req.Tty {
			http.Error(w, "want Tty in the start request", http.StatusBadRequest)
			return
		}
		conn := upgrade(t, w, MediaTypeRawStream)
		defer conn.Close()
		_, _ = io.WriteString(conn, "raw output")
	})
	c := serveUnix(t, mux)
	ctx := context.Background()

	s, err := c.ContainerAttach(ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if s.Raw {
		t.Error("multiplexed stream reported as raw")
	}
	if _, err := io.WriteString(s, "hello"); err != nil {
		t.Fatal(err)
	}
	if err := s.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if err := Demux(&stdout, &stderr, s); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if stdout.String() != "HELLO" || stderr.String() != "ready\n" {
		t.Errorf("stdout %q stderr %q", stdout.String(), stderr.String())
	}

	s, err = c.ExecStart(ctx, "e1", ExecStartRequest{Tty: true})
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(s)
	s.Close()
	if !s.Raw || string(out) != "raw output" {
		t.Errorf("raw = %v, output %q", s.Raw, out)
	}
}

func TestClientHijackRefused(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v"+Version+"/containers/{id}/attach", func(w http.ResponseWriter, r *http.Request) {
		writeTestJSON(w, http.StatusConflict, ErrorResponse{Message: "container c1 is not running"})
	})
	c := serveUnix(t, mux)
	_, err := c.ContainerAttach(context.Background(), "c1")
	var se *StatusError
	if !errors.As(err, &se) || se.Status != http.StatusConflict || se.Message != "container c1 is not running" {
		t.Fatalf("got %v, want the daemon's 409", err)
	}
}

func TestClientWaitReturnsOnceRegistered(t *testing.T) {
	release := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v"+Version+"/containers/{id}/wait", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("condition") != "next-exit" {
			http.Error(w, "want condition=next-exit", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		<-release
		_ = json.NewEncoder(w).Encode(ContainerWaitResponse{StatusCode: 3})
	})
	c := serveUnix(t, mux)
	resC, errC := c.ContainerWait(context.Background(), "c1", "next-exit")
	select {
	case r := <-resC:
		t.Fatalf("result %v before the container exited", r)
	case err := <-errC:
		t.Fatal(err)
	default:
	}
	close(release)
	select {
	case r := <-resC:
		if r.StatusCode != 3 {
			t.Errorf("StatusCode = %d, want 3", r.StatusCode)
		}
	case err := <-errC:
		t.Fatal(err)
	case <-time.After(5 * time.Second):
		t.Fatal("no wait result")
	}
}

func TestClientLogs(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v"+Version+"/containers/{id}/logs", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") == "tty" {
			w.Header().Set("Content-Type", MediaTypeRawStream)
			_, _ = io.WriteString(w, "plain\r\n")
			return
		}
		w.Header().Set("Content-Type", MediaTypeMultiplexedStream)
		stdout, stderr := NewFrameWriters(w)
		_, _ = io.WriteString(stdout, "out\n")
		_, _ = io.WriteString(stderr, "err\n")
	})
	c := serveUnix(t, mux)

	rc, raw, err := c.ContainerLogs(context.Background(), "tty", false)
	if err != nil || !raw {
		t.Fatalf("tty logs: raw=%v err=%v", raw, err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if string(b) != "plain\r\n" {
		t.Errorf("tty logs = %q", b)
	}

	rc, raw, err = c.ContainerLogs(context.Background(), "c1", false)
	if err != nil || raw {
		t.Fatalf("logs: raw=%v err=%v", raw, err)
	}
	var stdout, stderr bytes.Buffer
	if err := Demux(&stdout, &stderr, rc); err != nil {
		t.Fatal(err)
	}
	rc.Close()
	if stdout.String() != "out\n" || stderr.String() != "err\n" {
		t.Errorf("stdout %q stderr %q", stdout.String(), stderr.String())
	}
}
