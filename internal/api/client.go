package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// DefaultHost is where the daemon listens unless told otherwise.
const DefaultHost = "unix:///run/cnet/cnet.sock"

// clientBaseURL gives requests a syntactically valid URL; the host part is never resolved
// because every connection is dialled to the unix socket.
const clientBaseURL = "http://cnet/v" + Version

// StatusError is a non-2xx answer of the daemon. Its text is the daemon's message alone, so that
// the CLI can print it the way docker does ("Error response from daemon: <message>").
type StatusError struct {
	Status  int
	Message string
}

func (e *StatusError) Error() string { return e.Message }

// ConnectError means the daemon could not be reached at all. It renders as one line that
// tells the user what to check, instead of a chain of dial errors.
type ConnectError struct {
	Host string
	Err  error
}

func (e *ConnectError) Error() string {
	switch {
	case errors.Is(e.Err, syscall.ECONNREFUSED), errors.Is(e.Err, syscall.ENOENT):
		return fmt.Sprintf("cannot connect to the cnet daemon at %s: is it running?", e.Host)
	case errors.Is(e.Err, syscall.EACCES), errors.Is(e.Err, syscall.EPERM):
		return fmt.Sprintf("permission denied while trying to connect to the cnet daemon at %s", e.Host)
	}
	return fmt.Sprintf("cannot connect to the cnet daemon at %s: %v", e.Host, e.Err)
}

func (e *ConnectError) Unwrap() error { return e.Err }

// Client talks to the cnet daemon over its unix socket.
type Client struct {
	host       string
	socketPath string
	http       *http.Client
	// Timeout, when set, bounds every call that returns a whole answer (not the streams of
	// attach, logs, wait and exec, which end with their context). OnTimeout, when set, is
	// told of each call that ran out of it: test harnesses use it to dump a hung daemon.
	Timeout   time.Duration
	OnTimeout func(method, path string)
}

// NewClient returns a client for host, a "unix:///path" address; "" means DefaultHost.
// Nothing is dialled until the first request, so a missing daemon surfaces as a ConnectError
// from the call that needed it.
func NewClient(host string) (*Client, error) {
	if host == "" {
		host = DefaultHost
	}
	path, ok := strings.CutPrefix(host, "unix://")
	if !ok || path == "" {
		return nil, fmt.Errorf("invalid daemon address %q: cnet only listens on unix sockets, use unix:///path/to/socket", host)
	}
	c := &Client{host: host, socketPath: path}
	c.http = &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) { return c.dial(ctx) },
	}}
	return c, nil
}

// Host is the address the client was built for, as given (for messages).
func (c *Client) Host() string { return c.host }

// SocketPath is the filesystem path of the daemon's socket.
func (c *Client) SocketPath() string { return c.socketPath }

func (c *Client) dial(ctx context.Context) (net.Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", c.socketPath)
	if err != nil {
		return nil, &ConnectError{Host: c.host, Err: err}
	}
	return conn, nil
}

// newRequest builds a request for path (below the version prefix) with an optional JSON body.
func (c *Client) newRequest(ctx context.Context, method, path string, query url.Values, body any) (*http.Request, error) {
	u := clientBaseURL + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var rd io.Reader
	contentType := "application/json"
	if raw, ok := body.(rawBody); ok {
		rd, contentType = raw.r, raw.contentType
	} else if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("encoding %s %s request: %w", method, path, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, fmt.Errorf("building %s %s request: %w", method, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	return req, nil
}

// rawBody is a request body sent as it is (an archive), not as JSON.
type rawBody struct {
	r           io.Reader
	contentType string
}

// send performs a request and returns the response when it is 2xx; any other status becomes a
// *StatusError (the body already consumed).
func (c *Client) send(ctx context.Context, method, path string, query url.Values, body any) (*http.Response, error) {
	req, err := c.newRequest(ctx, method, path, query, body)
	if err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var ce *ConnectError
		if errors.As(err, &ce) {
			return nil, ce
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, ctxErr
		}
		return nil, fmt.Errorf("%s %s: talking to the cnet daemon at %s: %w", method, path, c.host, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		defer resp.Body.Close()
		return nil, clientStatusError(resp)
	}
	return resp, nil
}

// call performs a request and decodes a JSON answer into out (when out is not nil).
func (c *Client) call(ctx context.Context, method, path string, query url.Values, body, out any) (err error) {
	ctx, done := c.bound(ctx, method, path)
	defer func() { done(&err) }()
	resp, err := c.send(ctx, method, path, query, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decoding the daemon's answer to %s %s: %w", method, path, err)
	}
	return nil
}

// bound applies c.Timeout to one call; done reports a call that ran out of it, naming it in
// the error, and releases the timer.
func (c *Client) bound(ctx context.Context, method, path string) (context.Context, func(*error)) {
	if c.Timeout <= 0 {
		return ctx, func(*error) {}
	}
	ctx, cancel := context.WithTimeoutCause(ctx, c.Timeout, errCallTimeout)
	return ctx, func(err *error) {
		defer cancel()
		if *err != nil && context.Cause(ctx) == errCallTimeout {
			if c.OnTimeout != nil {
				c.OnTimeout(method, path)
			}
			*err = fmt.Errorf("%s %s: the cnet daemon at %s did not answer within %s: %w", method, path, c.host, c.Timeout, *err)
		}
	}
}

var errCallTimeout = errors.New("call timed out")

// callRaw is call for inspect endpoints: the caller gets the daemon's bytes as sent, so that
// output rendered from them keeps the daemon's key order and null-versus-empty distinctions.
func (c *Client) callRaw(ctx context.Context, path string, out any) (_ []byte, err error) {
	ctx, done := c.bound(ctx, http.MethodGet, path)
	defer func() { done(&err) }()
	resp, err := c.send(ctx, http.MethodGet, path, nil, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("reading the daemon's answer to GET %s: %w", path, err)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return nil, fmt.Errorf("decoding the daemon's answer to GET %s: %w", path, err)
	}
	return raw, nil
}

func clientStatusError(resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var er ErrorResponse
	if err := json.Unmarshal(body, &er); err == nil && er.Message != "" {
		return &StatusError{Status: resp.StatusCode, Message: er.Message}
	}
	msg := strings.TrimSpace(string(body))
	if msg == "" {
		msg = http.StatusText(resp.StatusCode)
	}
	return &StatusError{Status: resp.StatusCode, Message: msg}
}

func clientPathID(prefix, id, suffix string) string {
	return prefix + url.PathEscape(id) + suffix
}

// NetworkList returns the networks that Docker's filters select (nil: every one).
func (c *Client) NetworkList(ctx context.Context, f Filters) ([]Network, error) {
	var out []Network
	err := c.call(ctx, http.MethodGet, "/networks", filterQuery(f), nil, &out)
	return out, err
}

// NetworkInspect returns one network by name, id or unique id prefix.
func (c *Client) NetworkInspect(ctx context.Context, idOrName string) (Network, error) {
	n, _, err := c.NetworkInspectWithRaw(ctx, idOrName)
	return n, err
}

// NetworkInspectWithRaw also returns the daemon's JSON as sent.
func (c *Client) NetworkInspectWithRaw(ctx context.Context, idOrName string) (Network, []byte, error) {
	var n Network
	raw, err := c.callRaw(ctx, clientPathID("/networks/", idOrName, ""), &n)
	return n, raw, err
}

// NetworkInspectVerbose is inspect --verbose: a global network's peers and diagnosis too.
func (c *Client) NetworkInspectVerbose(ctx context.Context, idOrName string) (Network, []byte, error) {
	var n Network
	raw, err := c.callRaw(ctx, clientPathID("/networks/", idOrName, "")+"?verbose=true", &n)
	return n, raw, err
}

// NetworkCreate creates a network.
func (c *Client) NetworkCreate(ctx context.Context, req NetworkCreateRequest) (NetworkCreateResponse, error) {
	var out NetworkCreateResponse
	err := c.call(ctx, http.MethodPost, "/networks/create", nil, req, &out)
	return out, err
}

// NetworkRemove removes a network.
func (c *Client) NetworkRemove(ctx context.Context, idOrName string) error {
	return c.call(ctx, http.MethodDelete, clientPathID("/networks/", idOrName, ""), nil, nil, nil)
}

// NetworkConnect attaches a container to a network.
func (c *Client) NetworkConnect(ctx context.Context, idOrName string, req NetworkConnectRequest) error {
	return c.call(ctx, http.MethodPost, clientPathID("/networks/", idOrName, "/connect"), nil, req, nil)
}

// NetworkDisconnect detaches a container from a network.
func (c *Client) NetworkDisconnect(ctx context.Context, idOrName string, req NetworkDisconnectRequest) error {
	return c.call(ctx, http.MethodPost, clientPathID("/networks/", idOrName, "/disconnect"), nil, req, nil)
}

// NetworksPrune removes the custom networks no container uses.
func (c *Client) NetworksPrune(ctx context.Context) (NetworksPruneResponse, error) {
	var out NetworksPruneResponse
	err := c.call(ctx, http.MethodPost, "/networks/prune", nil, nil, &out)
	return out, err
}

// ContainerCreate creates a container; name may be empty.
func (c *Client) ContainerCreate(ctx context.Context, name string, req ContainerCreateRequest) (ContainerCreateResponse, error) {
	var q url.Values
	if name != "" {
		q = url.Values{"name": {name}}
	}
	var out ContainerCreateResponse
	err := c.call(ctx, http.MethodPost, "/containers/create", q, req, &out)
	return out, err
}

// ContainerStart starts a created container.
func (c *Client) ContainerStart(ctx context.Context, idOrName string) error {
	return c.call(ctx, http.MethodPost, clientPathID("/containers/", idOrName, "/start"), nil, nil, nil)
}

// ContainerAttach connects to the container's stdio. Attach before start to see all output.
func (c *Client) ContainerAttach(ctx context.Context, idOrName string) (*HijackedStream, error) {
	q := url.Values{"stream": {"1"}, "stdin": {"1"}, "stdout": {"1"}, "stderr": {"1"}}
	return c.hijack(ctx, clientPathID("/containers/", idOrName, "/attach"), q, nil)
}

// ContainerWait asks the daemon to wait for the container (condition "next-exit" or
// "not-running"; "" is the daemon's default). It returns once the daemon has answered with its
// headers, which it does after registering the wait (as Docker's daemon does): a start issued
// after ContainerWait returns cannot race past the exit. The exit code arrives on the first
// channel, or an error on the second.
func (c *Client) ContainerWait(ctx context.Context, idOrName, condition string) (<-chan ContainerWaitResponse, <-chan error) {
	resC := make(chan ContainerWaitResponse, 1)
	errC := make(chan error, 1)
	var q url.Values
	if condition != "" {
		q = url.Values{"condition": {condition}}
	}
	path := clientPathID("/containers/", idOrName, "/wait")
	resp, err := c.send(ctx, http.MethodPost, path, q, nil)
	if err != nil {
		errC <- err
		return resC, errC
	}
	go func() {
		defer resp.Body.Close()
		var out ContainerWaitResponse
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			errC <- fmt.Errorf("waiting for container %s: reading the daemon's answer: %w", idOrName, err)
			return
		}
		resC <- out
	}()
	return resC, errC
}

// ContainerList lists running containers, or all of them.
func (c *Client) ContainerList(ctx context.Context, all bool, f Filters) ([]ContainerSummary, error) {
	q := url.Values{}
	if all {
		q.Set("all", "1")
	}
	if len(f) > 0 {
		q.Set("filters", f.Encode())
	}
	var out []ContainerSummary
	err := c.call(ctx, http.MethodGet, "/containers/json", q, nil, &out)
	return out, err
}

// ContainerInspect returns one container by name, id or unique id prefix.
func (c *Client) ContainerInspect(ctx context.Context, idOrName string) (ContainerJSON, error) {
	j, _, err := c.ContainerInspectWithRaw(ctx, idOrName)
	return j, err
}

// ContainerInspectWithRaw also returns the daemon's JSON as sent.
func (c *Client) ContainerInspectWithRaw(ctx context.Context, idOrName string) (ContainerJSON, []byte, error) {
	var j ContainerJSON
	raw, err := c.callRaw(ctx, clientPathID("/containers/", idOrName, "/json"), &j)
	return j, raw, err
}

// ContainerStop stops a container; a nil timeout leaves the grace period to the daemon.
func (c *Client) ContainerStop(ctx context.Context, idOrName string, timeoutSeconds *int) error {
	var q url.Values
	if timeoutSeconds != nil {
		q = url.Values{"t": {strconv.Itoa(*timeoutSeconds)}}
	}
	return c.call(ctx, http.MethodPost, clientPathID("/containers/", idOrName, "/stop"), q, nil, nil)
}

// ContainerRemove removes a container; force also stops a running one.
func (c *Client) ContainerRemove(ctx context.Context, idOrName string, force bool) error {
	var q url.Values
	if force {
		q = url.Values{"force": {"1"}}
	}
	return c.call(ctx, http.MethodDelete, clientPathID("/containers/", idOrName, ""), q, nil, nil)
}

// ContainerLogs returns the container's output so far (with follow, and what comes until it
// stops): multiplexed frames, or raw bytes when raw is true (a container with a tty). The
// caller closes the reader.
func (c *Client) ContainerLogs(ctx context.Context, idOrName string, follow bool) (rc io.ReadCloser, raw bool, err error) {
	q := url.Values{"stdout": {"1"}, "stderr": {"1"}}
	if follow {
		q.Set("follow", "1")
	}
	resp, err := c.send(ctx, http.MethodGet, clientPathID("/containers/", idOrName, "/logs"), q, nil)
	if err != nil {
		return nil, false, err
	}
	return resp.Body, clientIsRaw(resp.Header), nil
}

// ExecCreate prepares a command to run in a running container.
func (c *Client) ExecCreate(ctx context.Context, idOrName string, req ExecCreateRequest) (IDResponse, error) {
	var out IDResponse
	err := c.call(ctx, http.MethodPost, clientPathID("/containers/", idOrName, "/exec"), nil, req, &out)
	return out, err
}

// ExecStart runs a prepared exec and connects to its stdio.
func (c *Client) ExecStart(ctx context.Context, execID string, req ExecStartRequest) (*HijackedStream, error) {
	return c.hijack(ctx, clientPathID("/exec/", execID, "/start"), nil, req)
}

// ExecInspect reports an exec's state and, once it ended, its exit code.
func (c *Client) ExecInspect(ctx context.Context, execID string) (ExecInspect, error) {
	var out ExecInspect
	err := c.call(ctx, http.MethodGet, clientPathID("/exec/", execID, "/json"), nil, nil, &out)
	return out, err
}

// HijackedStream is a connection taken over from HTTP after attach or exec start: stdin is
// written to it, the process's output read from it (raw when Raw, else multiplexed frames to
// pass to Demux).
type HijackedStream struct {
	Conn *net.UnixConn
	// Reader holds bytes the handshake already buffered; read output through it, never
	// through Conn directly.
	Reader *bufio.Reader
	Raw    bool
}

func (s *HijackedStream) Read(p []byte) (int, error)  { return s.Reader.Read(p) }
func (s *HijackedStream) Write(p []byte) (int, error) { return s.Conn.Write(p) }

// CloseWrite tells the process its stdin ended while output keeps flowing.
func (s *HijackedStream) CloseWrite() error { return s.Conn.CloseWrite() }

// Close ends the stream both ways.
func (s *HijackedStream) Close() error { return s.Conn.Close() }

// hijack sends a POST asking to upgrade the connection and returns the connection once the
// daemon answered 101 Switching Protocols. net/http's client cannot hand a connection over, so
// the request is written and the answer read by hand on a connection of our own.
func (c *Client) hijack(ctx context.Context, path string, query url.Values, body any) (*HijackedStream, error) {
	req, err := c.newRequest(ctx, http.MethodPost, path, query, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "tcp")
	conn, err := c.dial(ctx)
	if err != nil {
		return nil, err
	}
	uc, ok := conn.(*net.UnixConn)
	if !ok {
		conn.Close()
		return nil, fmt.Errorf("POST %s: the connection to %s is not a unix socket", path, c.host)
	}
	// A cancelled context must not leave us blocked in the handshake.
	stop := context.AfterFunc(ctx, func() { _ = uc.SetDeadline(time.Unix(1, 0)) })
	br := bufio.NewReader(uc)
	resp, err := clientHandshake(uc, br, req)
	if !stop() {
		uc.Close()
		return nil, ctx.Err()
	}
	if err != nil {
		uc.Close()
		return nil, fmt.Errorf("POST %s: talking to the cnet daemon at %s: %w", path, c.host, err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		defer uc.Close()
		defer resp.Body.Close()
		if resp.StatusCode >= 400 {
			return nil, clientStatusError(resp)
		}
		return nil, fmt.Errorf("POST %s: the cnet daemon answered %q instead of switching to a stream", path, resp.Status)
	}
	return &HijackedStream{Conn: uc, Reader: br, Raw: clientIsRaw(resp.Header)}, nil
}

func clientHandshake(conn net.Conn, br *bufio.Reader, req *http.Request) (*http.Response, error) {
	if err := req.Write(conn); err != nil {
		return nil, err
	}
	return http.ReadResponse(br, req)
}

func clientIsRaw(h http.Header) bool {
	return h.Get("Content-Type") == MediaTypeRawStream
}

// ContainerKill sends signal ("" for SIGKILL) to a running container.
func (c *Client) ContainerKill(ctx context.Context, idOrName, signal string) error {
	var q url.Values
	if signal != "" {
		q = url.Values{"signal": {signal}}
	}
	return c.call(ctx, http.MethodPost, clientPathID("/containers/", idOrName, "/kill"), q, nil, nil)
}

// ContainerRestart stops (with a grace period, nil for the daemon's) and starts a container.
func (c *Client) ContainerRestart(ctx context.Context, idOrName string, timeoutSeconds *int) error {
	var q url.Values
	if timeoutSeconds != nil {
		q = url.Values{"t": {strconv.Itoa(*timeoutSeconds)}}
	}
	return c.call(ctx, http.MethodPost, clientPathID("/containers/", idOrName, "/restart"), q, nil, nil)
}

// ContainerRename gives a container a new name.
func (c *Client) ContainerRename(ctx context.Context, idOrName, name string) error {
	return c.call(ctx, http.MethodPost, clientPathID("/containers/", idOrName, "/rename"), url.Values{"name": {name}}, nil, nil)
}

// ContainersPrune removes stopped containers that the filters select.
func (c *Client) ContainersPrune(ctx context.Context, f Filters) (ContainersPruneResponse, error) {
	var out ContainersPruneResponse
	err := c.call(ctx, http.MethodPost, "/containers/prune", filterQuery(f), nil, &out)
	return out, err
}

// filterQuery is the query of a list or prune call: Docker's filters parameter, if any.
func filterQuery(f Filters) url.Values {
	if len(f) == 0 {
		return nil
	}
	return url.Values{"filters": {f.Encode()}}
}

// ContainerResize sets the window size of a -t container's terminal.
func (c *Client) ContainerResize(ctx context.Context, idOrName string, rows, cols uint16) error {
	return c.call(ctx, http.MethodPost, clientPathID("/containers/", idOrName, "/resize"), sizeQuery(rows, cols), nil, nil)
}

// ExecResize sets the window size of a -t exec's terminal.
func (c *Client) ExecResize(ctx context.Context, execID string, rows, cols uint16) error {
	return c.call(ctx, http.MethodPost, clientPathID("/exec/", execID, "/resize"), sizeQuery(rows, cols), nil, nil)
}

func sizeQuery(rows, cols uint16) url.Values {
	return url.Values{"h": {strconv.Itoa(int(rows))}, "w": {strconv.Itoa(int(cols))}}
}
