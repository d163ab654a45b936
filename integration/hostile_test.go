package integration

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/cnet-dev/cnet/internal/testenv"
)

// rawAPI sends a request straight to the daemon's socket, as a hostile or buggy client would.
func rawAPI(t *testing.T, h *testenv.Host, method, path, body string) (int, string) {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", h.Socket)
	}}}
	var status int
	var data []byte
	err := h.Call(func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, method, "http://cnet"+path, strings.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := c.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		status = resp.StatusCode
		data, err = io.ReadAll(resp.Body)
		return err
	})
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return status, string(data)
}

// TestHostileAPIInput feeds every endpoint malformed or hostile input: each is answered with a
// 4xx and a message, and the state before and after is the same.
func TestHostileAPIInput(t *testing.T) {
	h := testenv.NewHost(t)
	h.MustCLI("network", "create", "--subnet", "10.50.0.0/16", "good")
	runSleeper(t, h, "c1", "--net", "good")
	before := state(t, h)
	huge := strings.Repeat("a", 2<<20)
	tests := []struct{ method, path, body string }{
		{"POST", "/networks/create", `{`},
		{"POST", "/networks/create", `{"Name": 5}`},
		{"POST", "/networks/create", `{"Name": ""}`},
		{"POST", "/networks/create", `{"Name": "../../etc"}`},
		{"POST", "/networks/create", `{"Name": "x/y"}`},
		{"POST", "/networks/create", `{"Name": "` + strings.Repeat("n", 300) + `"}`},
		{"POST", "/networks/create", `{"Name": "` + huge + `"}`},
		{"POST", "/networks/create", `{"Name": "n1", "IPAM": {"Config": [{"Subnet": "10.0.0.0/99"}]}}`},
		{"POST", "/networks/create", `{"Name": "n1", "IPAM": {"Config": [{"Subnet": "not-a-cidr"}]}}`},
		{"POST", "/networks/create", `{"Name": "n1", "IPAM": {"Config": [{"Subnet": "10.60.0.0/16", "Gateway": "10.61.0.1"}]}}`},
		{"POST", "/networks/create", `{"Name": "n1", "IPAM": {"Config": [{"Subnet": "10.60.0.0/16", "IPRange": "10.60.0.0/8"}]}}`},
		{"POST", "/networks/create", `{"Name": "n1", "IPAM": {"Config": [{"Subnet": "10.60.0.0/16", "AuxiliaryAddresses": {"a": "x"}}]}}`},
		{"POST", "/networks/create", `{"Name": "n1", "Options": {"com.docker.network.driver.mtu": "-1"}}`},
		{"POST", "/networks/create", `{"Name": "n1", "Options": {"com.docker.network.bridge.name": "` + strings.Repeat("b", 40) + `"}}`},
		{"POST", "/networks/create", `{"Name": "n1", "Driver": "../../bin/sh"}`},
		{"POST", "/networks/create", `{"Name": "n1", "IPAM": {"Driver": "other"}}`},
		{"DELETE", "/networks/nosuch", ``},
		{"DELETE", "/networks/..%2F..%2Fetc", ``},
		{"GET", "/networks/%00", ``},
		{"POST", "/networks/good/connect", `{"Container": 7}`},
		{"POST", "/networks/good/connect", `{"Container": "nosuch"}`},
		{"POST", "/networks/good/connect", `{"Container": "c1", "EndpointConfig": {"IPAMConfig": {"IPv4Address": "999.1.1.1"}}}`},
		{"POST", "/networks/nosuch/disconnect", `{"Container": "c1"}`},
		{"POST", "/containers/create?name=x", `{"Cmd": "notalist"}`},
		{"POST", "/containers/create?name=x", `{"Cmd": []}`},
		{"POST", "/containers/create?name=../x", `{"Cmd": ["true"]}`},
		{"POST", "/containers/create?name=x", `{"Cmd": ["true"], "Rootfs": "/nonexistent"}`},
		{"POST", "/containers/create?name=x", `{"Cmd": ["true"], "HostConfig": {"NetworkMode": "nosuch"}}`},
		{"POST", "/containers/create?name=x", `{"Cmd": ["true"], "HostConfig": {"PortBindings": {"99999/tcp": [{"HostPort": "1"}]}}}`},
		{"POST", "/containers/create?name=x", `{"Cmd": ["true"], "HostConfig": {"PortBindings": {"80/tcp": [{"HostPort": "70000"}]}}}`},
		{"POST", "/containers/create?name=x", `{"Cmd": ["true"], "HostConfig": {"PortBindings": {"80/xyz": [{}]}}}`},
		{"POST", "/containers/create?name=x", `{"Cmd": ["true"], "HostConfig": {"Dns": ["x"]}}`},
		{"POST", "/containers/create?name=x", `{"Cmd": ["true"], "HostConfig": {"ExtraHosts": ["nocolon"]}}`},
		{"POST", "/containers/create?name=x", `{"Cmd": ["true"], "HostConfig": {"Links": ["nosuch:x"]}}`},
		{"POST", "/containers/create?name=x", `{"Cmd": ["true"], "ExposedPorts": {"0/tcp": {}}}`},
		{"POST", "/containers/nosuch/start", ``},
		{"POST", "/containers/c1/stop?t=abc", ``},
		{"POST", "/containers/c1/wait?condition=bogus", ``},
		{"DELETE", "/containers/c1", ``},
		{"POST", "/containers/c1/exec", `{"Cmd": []}`},
		{"POST", "/exec/nosuch/start", `{}`},
		{"GET", "/exec/nosuch/json", ``},
		{"GET", "/containers/nosuch/json", ``},
		{"GET", "/containers/nosuch/logs", ``},
	}
	for _, tt := range tests {
		name := tt.method + " " + tt.path
		if len(tt.body) < 80 {
			name += " " + tt.body
		}
		t.Run(name, func(t *testing.T) {
			status, body := rawAPI(t, h, tt.method, tt.path, tt.body)
			var e struct{ Message string }
			if status < 400 || status >= 500 {
				t.Errorf("status %d, want a 4xx: %.200s", status, body)
			} else if err := json.Unmarshal([]byte(body), &e); err != nil || e.Message == "" {
				t.Errorf("status %d without a message: %.200s", status, body)
			}
			h.CLI("rm", "-f", "x")
			if after := state(t, h); after != before {
				t.Errorf("state changed:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}
}

// TestSocketIsRootOnly: the API socket is 0660 root:root by default, and root:GROUP with
// --group; there is no TCP listener.
func TestSocketIsRootOnly(t *testing.T) {
	h := testenv.NewHost(t)
	if out := h.MustRun("stat", "-c", "%a %U %G", h.Socket); out != "660 root root\n" {
		t.Errorf("socket: %q, want 660 root root", out)
	}
	// Nothing else runs in the test host: any TCP listener would be the daemon's.
	if out := h.MustRun("busybox", "netstat", "-ltn"); strings.Contains(out, "LISTEN") {
		t.Errorf("something listens on TCP in a host running only the daemon:\n%s", out)
	}
	h.StopDaemon()
	h.StartDaemon("--group", "daemon")
	if out := h.MustRun("stat", "-c", "%a %U %G", h.Socket); out != "660 root daemon\n" {
		t.Errorf("socket with --group daemon: %q", out)
	}
}
