package dockerplugin

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
)

// called is one Backend call: the method's name and its arguments as the handler passed them.
type called struct {
	Method string
	Args   []any
}

// fakeBackend records every call and answers with canned values; errs fails a method by name.
type fakeBackend struct {
	calls []called
	errs  map[string]error

	scope    string
	iface    EndpointInterface
	operInfo map[string]any
	join     JoinResponse
	pool     RequestPoolResponse
	addr     RequestAddressResponse
}

func (f *fakeBackend) record(method string, args ...any) error {
	f.calls = append(f.calls, called{method, args})
	return f.errs[method]
}

func (f *fakeBackend) DriverCapabilities() string {
	_ = f.record("DriverCapabilities")
	return f.scope
}
func (f *fakeBackend) CreateNetwork(req CreateNetworkRequest) error {
	return f.record("CreateNetwork", req)
}
func (f *fakeBackend) DeleteNetwork(nid string) error { return f.record("DeleteNetwork", nid) }
func (f *fakeBackend) CreateEndpoint(req CreateEndpointRequest) (EndpointInterface, error) {
	return f.iface, f.record("CreateEndpoint", req)
}
func (f *fakeBackend) DeleteEndpoint(nid, eid string) error {
	return f.record("DeleteEndpoint", nid, eid)
}
func (f *fakeBackend) EndpointOperInfo(nid, eid string) (map[string]any, error) {
	return f.operInfo, f.record("EndpointOperInfo", nid, eid)
}
func (f *fakeBackend) Join(req JoinRequest) (JoinResponse, error) {
	return f.join, f.record("Join", req)
}
func (f *fakeBackend) Leave(nid, eid string) error { return f.record("Leave", nid, eid) }
func (f *fakeBackend) ProgramExternalConnectivity(req ExternalConnectivityRequest) error {
	return f.record("ProgramExternalConnectivity", req)
}
func (f *fakeBackend) RevokeExternalConnectivity(nid, eid string) error {
	return f.record("RevokeExternalConnectivity", nid, eid)
}
func (f *fakeBackend) DefaultAddressSpaces() (string, string) {
	_ = f.record("DefaultAddressSpaces")
	return "CnetLocal", "CnetGlobal"
}
func (f *fakeBackend) RequestPool(req RequestPoolRequest) (RequestPoolResponse, error) {
	return f.pool, f.record("RequestPool", req)
}
func (f *fakeBackend) ReleasePool(poolID string) error { return f.record("ReleasePool", poolID) }
func (f *fakeBackend) RequestAddress(req RequestAddressRequest) (RequestAddressResponse, error) {
	return f.addr, f.record("RequestAddress", req)
}
func (f *fakeBackend) ReleaseAddress(poolID, addr string) error {
	return f.record("ReleaseAddress", poolID, addr)
}

// post sends body to path the way dockerd's plugin client does (POST, its Accept header) and
// returns the status and the body without its final newline.
func post(t *testing.T, h http.Handler, method, path, body string) (int, string) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("Accept", contentType)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if got := rec.Header().Get("Content-Type"); got != contentType {
		t.Errorf("%s %s: Content-Type %q, want %q", method, path, got, contentType)
	}
	return rec.Code, strings.TrimSuffix(rec.Body.String(), "\n")
}

// Bodies as dockerd encodes them (moby daemon/libnetwork/drivers/remote/driver.go and
// ipams/remote/remote.go, json.Encoder of the api structs): IPAMData's keys come sorted from
// its MarshalJSON, numbers in Options are plain JSON numbers.
const (
	createNetworkBody = `{"NetworkID":"7a3cf1","Options":{"com.docker.network.enable_ipv4":true,"com.docker.network.enable_ipv6":false,"com.docker.network.generic":{"com.docker.network.driver.mtu":"1400"}},"IPv4Data":[{"AddressSpace":"CnetLocal","AuxAddresses":{"router":"172.18.0.2/16"},"Gateway":"172.18.0.1/16","Pool":"172.18.0.0/16"}],"IPv6Data":null}` + "\n"
	sandboxOptions    = `{"com.docker.network.endpoint.exposedports":[{"Proto":6,"Port":80}],"com.docker.network.portmap":[{"Proto":6,"IP":"","Port":80,"HostIP":"","HostPort":8080,"HostPortEnd":8080}]}`
)

var decodedSandboxOptions = map[string]any{
	"com.docker.network.endpoint.exposedports": []any{map[string]any{"Proto": 6.0, "Port": 80.0}},
	"com.docker.network.portmap": []any{map[string]any{
		"Proto": 6.0, "IP": "", "Port": 80.0, "HostIP": "", "HostPort": 8080.0, "HostPortEnd": 8080.0,
	}},
}

func TestHandler(t *testing.T) {
	for _, tc := range []struct {
		name       string
		method     string // default POST
		path, body string
		backend    fakeBackend
		wantStatus int
		wantBody   string
		wantCalls  []called
	}{
		{
			name: "activate", path: "/Plugin.Activate",
			wantStatus: 200, wantBody: `{"Implements":["NetworkDriver","IpamDriver"]}`,
		},
		{
			name: "activate ignores a body", path: "/Plugin.Activate", body: "not json",
			wantStatus: 200, wantBody: `{"Implements":["NetworkDriver","IpamDriver"]}`,
		},
		{
			name: "driver capabilities", path: "/NetworkDriver.GetCapabilities",
			backend:    fakeBackend{scope: "global"},
			wantStatus: 200, wantBody: `{"Scope":"global","ConnectivityScope":"global"}`,
			wantCalls: []called{{"DriverCapabilities", nil}},
		},
		{
			name: "bad scope", path: "/NetworkDriver.GetCapabilities",
			backend:    fakeBackend{scope: "swarm"},
			wantStatus: 500, wantBody: `{"Err":"invalid driver scope \"swarm\": want local or global"}`,
			wantCalls: []called{{"DriverCapabilities", nil}},
		},
		{
			name: "create network", path: "/NetworkDriver.CreateNetwork", body: createNetworkBody,
			wantStatus: 200, wantBody: `{}`,
			wantCalls: []called{{"CreateNetwork", []any{CreateNetworkRequest{
				NetworkID: "7a3cf1",
				Options: map[string]any{
					"com.docker.network.enable_ipv4": true,
					"com.docker.network.enable_ipv6": false,
					"com.docker.network.generic":     map[string]any{"com.docker.network.driver.mtu": "1400"},
				},
				IPv4Data: []IPAMData{{
					AddressSpace: "CnetLocal", Pool: "172.18.0.0/16", Gateway: "172.18.0.1/16",
					AuxAddresses: map[string]string{"router": "172.18.0.2/16"},
				}},
			}}}},
		},
		{
			name: "delete network", path: "/NetworkDriver.DeleteNetwork", body: `{"NetworkID":"7a3cf1"}`,
			wantStatus: 200, wantBody: `{}`,
			wantCalls: []called{{"DeleteNetwork", []any{"7a3cf1"}}},
		},
		{
			name:       "create endpoint: the driver adds the MAC",
			path:       "/NetworkDriver.CreateEndpoint",
			body:       `{"NetworkID":"n1","EndpointID":"e1","Interface":{"Address":"172.18.0.3/16","AddressIPv6":"","MacAddress":""},"Options":{"com.docker.network.endpoint.exposedports":[{"Proto":6,"Port":80}]}}`,
			backend:    fakeBackend{iface: EndpointInterface{MacAddress: "02:42:ac:12:00:03"}},
			wantStatus: 200, wantBody: `{"Interface":{"Address":"","AddressIPv6":"","MacAddress":"02:42:ac:12:00:03"}}`,
			wantCalls: []called{{"CreateEndpoint", []any{CreateEndpointRequest{
				NetworkID: "n1", EndpointID: "e1",
				Interface: &EndpointInterface{Address: "172.18.0.3/16"},
				Options: map[string]any{
					"com.docker.network.endpoint.exposedports": []any{map[string]any{"Proto": 6.0, "Port": 80.0}},
				},
			}}}},
		},
		{
			name:       "create endpoint: an echo of dockerd's values is dropped",
			path:       "/NetworkDriver.CreateEndpoint",
			body:       `{"NetworkID":"n1","EndpointID":"e1","Interface":{"Address":"172.18.0.3/16","AddressIPv6":"","MacAddress":"02:42:AC:12:00:03"},"Options":null}`,
			backend:    fakeBackend{iface: EndpointInterface{Address: "172.18.0.3/16", MacAddress: "02:42:ac:12:00:03"}},
			wantStatus: 200, wantBody: `{}`,
			wantCalls: []called{{"CreateEndpoint", []any{CreateEndpointRequest{
				NetworkID: "n1", EndpointID: "e1",
				Interface: &EndpointInterface{Address: "172.18.0.3/16", MacAddress: "02:42:AC:12:00:03"},
			}}}},
		},
		{
			name: "create endpoint: no interface given, the driver fills all",
			path: "/NetworkDriver.CreateEndpoint",
			body: `{"NetworkID":"n1","EndpointID":"e1","Interface":null,"Options":{}}`,
			backend: fakeBackend{iface: EndpointInterface{
				Address: "172.18.0.3/16", AddressIPv6: "fd00::3/64", MacAddress: "02:42:ac:12:00:03",
			}},
			wantStatus: 200, wantBody: `{"Interface":{"Address":"172.18.0.3/16","AddressIPv6":"fd00::3/64","MacAddress":"02:42:ac:12:00:03"}}`,
			wantCalls: []called{{"CreateEndpoint", []any{CreateEndpointRequest{
				NetworkID: "n1", EndpointID: "e1", Options: map[string]any{},
			}}}},
		},
		{
			name:       "create endpoint: a different address is refused and the endpoint removed",
			path:       "/NetworkDriver.CreateEndpoint",
			body:       `{"NetworkID":"n1","EndpointID":"e1","Interface":{"Address":"172.18.0.3/16","AddressIPv6":"","MacAddress":""},"Options":{}}`,
			backend:    fakeBackend{iface: EndpointInterface{Address: "172.18.0.9/16"}},
			wantStatus: 500, wantBody: `{"Err":"endpoint e1: cnet chose Address 172.18.0.9/16 (dockerd gave 172.18.0.3/16)"}`,
			wantCalls: []called{
				{"CreateEndpoint", []any{CreateEndpointRequest{
					NetworkID: "n1", EndpointID: "e1",
					Interface: &EndpointInterface{Address: "172.18.0.3/16"}, Options: map[string]any{},
				}}},
				{"DeleteEndpoint", []any{"n1", "e1"}},
			},
		},
		{
			name: "delete endpoint", path: "/NetworkDriver.DeleteEndpoint", body: `{"NetworkID":"n1","EndpointID":"e1"}`,
			wantStatus: 200, wantBody: `{}`,
			wantCalls: []called{{"DeleteEndpoint", []any{"n1", "e1"}}},
		},
		{
			name: "endpoint oper info", path: "/NetworkDriver.EndpointOperInfo", body: `{"NetworkID":"n1","EndpointID":"e1"}`,
			backend:    fakeBackend{operInfo: map[string]any{"com.docker.network.endpoint.macaddress": "02:42:ac:12:00:03"}},
			wantStatus: 200, wantBody: `{"Value":{"com.docker.network.endpoint.macaddress":"02:42:ac:12:00:03"}}`,
			wantCalls: []called{{"EndpointOperInfo", []any{"n1", "e1"}}},
		},
		{
			name: "endpoint oper info: nil is an empty map", path: "/NetworkDriver.EndpointOperInfo",
			body:       `{"NetworkID":"n1","EndpointID":"e1"}`,
			wantStatus: 200, wantBody: `{"Value":{}}`,
			wantCalls: []called{{"EndpointOperInfo", []any{"n1", "e1"}}},
		},
		{
			name: "join", path: "/NetworkDriver.Join",
			body: `{"NetworkID":"n1","EndpointID":"e1","SandboxKey":"/var/run/docker/netns/0f3a","Options":` + sandboxOptions + `}`,
			backend: fakeBackend{join: JoinResponse{
				InterfaceName: &InterfaceName{SrcName: "vcnet1a2b", DstPrefix: "eth"},
				Gateway:       "172.18.0.1",
				StaticRoutes:  []StaticRoute{{Destination: "10.0.0.0/8", RouteType: 0, NextHop: "172.18.0.254"}, {Destination: "192.168.5.0/24", RouteType: 1}},
			}},
			wantStatus: 200,
			wantBody:   `{"InterfaceName":{"SrcName":"vcnet1a2b","DstPrefix":"eth"},"Gateway":"172.18.0.1","StaticRoutes":[{"Destination":"10.0.0.0/8","RouteType":0,"NextHop":"172.18.0.254"},{"Destination":"192.168.5.0/24","RouteType":1}]}`,
			wantCalls: []called{{"Join", []any{JoinRequest{
				NetworkID: "n1", EndpointID: "e1", SandboxKey: "/var/run/docker/netns/0f3a", Options: decodedSandboxOptions,
			}}}},
		},
		{
			name: "join: internal network", path: "/NetworkDriver.Join",
			body: `{"NetworkID":"n1","EndpointID":"e1","SandboxKey":"/k","Options":{}}`,
			backend: fakeBackend{join: JoinResponse{
				InterfaceName: &InterfaceName{SrcName: "vcnet1a2b", DstPrefix: "eth"}, GatewayIPv6: "fd00::1", DisableGatewayService: true,
			}},
			wantStatus: 200, wantBody: `{"InterfaceName":{"SrcName":"vcnet1a2b","DstPrefix":"eth"},"GatewayIPv6":"fd00::1","DisableGatewayService":true}`,
			wantCalls: []called{{"Join", []any{JoinRequest{NetworkID: "n1", EndpointID: "e1", SandboxKey: "/k", Options: map[string]any{}}}}},
		},
		{
			name: "leave", path: "/NetworkDriver.Leave", body: `{"NetworkID":"n1","EndpointID":"e1"}`,
			wantStatus: 200, wantBody: `{}`,
			wantCalls: []called{{"Leave", []any{"n1", "e1"}}},
		},
		{
			name: "program external connectivity", path: "/NetworkDriver.ProgramExternalConnectivity",
			body:       `{"NetworkID":"n1","EndpointID":"e1","Options":` + sandboxOptions + `}`,
			wantStatus: 200, wantBody: `{}`,
			wantCalls: []called{{"ProgramExternalConnectivity", []any{ExternalConnectivityRequest{
				NetworkID: "n1", EndpointID: "e1", Options: decodedSandboxOptions,
			}}}},
		},
		{
			name: "revoke external connectivity", path: "/NetworkDriver.RevokeExternalConnectivity",
			body:       `{"NetworkID":"n1","EndpointID":"e1"}`,
			wantStatus: 200, wantBody: `{}`,
			wantCalls: []called{{"RevokeExternalConnectivity", []any{"n1", "e1"}}},
		},
		{
			name: "discover new is acknowledged", path: "/NetworkDriver.DiscoverNew",
			body:       `{"DiscoveryType":1,"DiscoveryData":{"Address":"10.0.0.5","BindAddress":"10.0.0.5","Self":false}}`,
			wantStatus: 200, wantBody: `{}`,
		},
		{
			name: "discover delete is acknowledged", path: "/NetworkDriver.DiscoverDelete",
			body:       `{"DiscoveryType":1,"DiscoveryData":{"Address":"10.0.0.5","Self":false}}`,
			wantStatus: 200, wantBody: `{}`,
		},
		{
			name: "allocate network is swarm's", path: "/NetworkDriver.AllocateNetwork",
			body:       `{"NetworkID":"n1","Options":{},"IPv4Data":null,"IPv6Data":null}`,
			wantStatus: 404, wantBody: `{"Err":"/NetworkDriver.AllocateNetwork: not implemented by cnet"}`,
		},
		{
			name: "free network is swarm's", path: "/NetworkDriver.FreeNetwork", body: `{"NetworkID":"n1"}`,
			wantStatus: 404, wantBody: `{"Err":"/NetworkDriver.FreeNetwork: not implemented by cnet"}`,
		},
		{
			name: "unknown method", path: "/NetworkDriver.GwAllocCheck", body: `{"Options":{}}`,
			wantStatus: 404, wantBody: `{"Err":"/NetworkDriver.GwAllocCheck: not implemented by cnet"}`,
		},
		{
			name: "unknown path", path: "/VolumeDriver.Create", body: `{}`,
			wantStatus: 404, wantBody: `{"Err":"/VolumeDriver.Create: not implemented by cnet"}`,
		},
		{
			name: "GET", method: http.MethodGet, path: "/Plugin.Activate",
			wantStatus: 405, wantBody: `{"Err":"Plugin.Activate: method GET not allowed, use POST"}`,
		},
		{
			name: "ipam capabilities", path: "/IpamDriver.GetCapabilities",
			wantStatus: 200, wantBody: `{"RequiresMACAddress":false,"RequiresRequestReplay":false}`,
		},
		{
			name: "default address spaces", path: "/IpamDriver.GetDefaultAddressSpaces",
			wantStatus: 200, wantBody: `{"LocalDefaultAddressSpace":"CnetLocal","GlobalDefaultAddressSpace":"CnetGlobal"}`,
			wantCalls: []called{{"DefaultAddressSpaces", nil}},
		},
		{
			name: "request pool", path: "/IpamDriver.RequestPool",
			body:       `{"AddressSpace":"CnetLocal","Pool":"","SubPool":"","Options":{},"V6":false}` + "\n",
			backend:    fakeBackend{pool: RequestPoolResponse{PoolID: "CnetLocal/172.18.0.0/16", Pool: "172.18.0.0/16"}},
			wantStatus: 200, wantBody: `{"PoolID":"CnetLocal/172.18.0.0/16","Pool":"172.18.0.0/16"}`,
			wantCalls: []called{{"RequestPool", []any{RequestPoolRequest{
				AddressSpace: "CnetLocal", Options: map[string]string{},
			}}}},
		},
		{
			name: "request pool: v6 with sub-pool and data", path: "/IpamDriver.RequestPool",
			body:       `{"AddressSpace":"CnetLocal","Pool":"fd00::/64","SubPool":"fd00::/80","Options":{"opt":"1"},"V6":true}`,
			backend:    fakeBackend{pool: RequestPoolResponse{PoolID: "p6", Pool: "fd00::/64", Data: map[string]string{"k": "v"}}},
			wantStatus: 200, wantBody: `{"PoolID":"p6","Pool":"fd00::/64","Data":{"k":"v"}}`,
			wantCalls: []called{{"RequestPool", []any{RequestPoolRequest{
				AddressSpace: "CnetLocal", Pool: "fd00::/64", SubPool: "fd00::/80", Options: map[string]string{"opt": "1"}, V6: true,
			}}}},
		},
		{
			name: "release pool", path: "/IpamDriver.ReleasePool", body: `{"PoolID":"p4"}`,
			wantStatus: 200, wantBody: `{}`,
			wantCalls: []called{{"ReleasePool", []any{"p4"}}},
		},
		{
			name: "request gateway address", path: "/IpamDriver.RequestAddress",
			body:       `{"PoolID":"p4","Address":"","Options":{"RequestAddressType":"com.docker.network.gateway"}}`,
			backend:    fakeBackend{addr: RequestAddressResponse{Address: "172.18.0.1/16"}},
			wantStatus: 200, wantBody: `{"Address":"172.18.0.1/16"}`,
			wantCalls: []called{{"RequestAddress", []any{RequestAddressRequest{
				PoolID: "p4", Options: map[string]string{"RequestAddressType": "com.docker.network.gateway"},
			}}}},
		},
		{
			name: "request a given address", path: "/IpamDriver.RequestAddress",
			body:       `{"PoolID":"p4","Address":"172.18.0.7","Options":null}`,
			backend:    fakeBackend{addr: RequestAddressResponse{Address: "172.18.0.7/16", Data: map[string]string{"k": "v"}}},
			wantStatus: 200, wantBody: `{"Address":"172.18.0.7/16","Data":{"k":"v"}}`,
			wantCalls: []called{{"RequestAddress", []any{RequestAddressRequest{PoolID: "p4", Address: "172.18.0.7"}}}},
		},
		{
			name: "release address", path: "/IpamDriver.ReleaseAddress", body: `{"PoolID":"p4","Address":"172.18.0.7"}`,
			wantStatus: 200, wantBody: `{}`,
			wantCalls: []called{{"ReleaseAddress", []any{"p4", "172.18.0.7"}}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			method := tc.method
			if method == "" {
				method = http.MethodPost
			}
			b := tc.backend
			status, body := post(t, NewHandler(&b), method, tc.path, tc.body)
			if status != tc.wantStatus || body != tc.wantBody {
				t.Errorf("got %d %s\nwant %d %s", status, body, tc.wantStatus, tc.wantBody)
			}
			if !reflect.DeepEqual(b.calls, tc.wantCalls) {
				t.Errorf("backend calls:\n got %#v\nwant %#v", b.calls, tc.wantCalls)
			}
		})
	}
}

// TestBackendErrors checks that every backend error reaches dockerd verbatim in "Err" with a
// status that is neither 200 (an IPAM response reads "Error", not "Err") nor 404 (which
// dockerd takes for an unimplemented method and ignores for external connectivity).
func TestBackendErrors(t *testing.T) {
	const msg = `network "web" has no free address`
	for _, tc := range []struct{ path, body, backendMethod string }{
		{"/NetworkDriver.CreateNetwork", createNetworkBody, "CreateNetwork"},
		{"/NetworkDriver.DeleteNetwork", `{"NetworkID":"n1"}`, "DeleteNetwork"},
		{"/NetworkDriver.CreateEndpoint", `{"NetworkID":"n1","EndpointID":"e1","Interface":{},"Options":{}}`, "CreateEndpoint"},
		{"/NetworkDriver.DeleteEndpoint", `{"NetworkID":"n1","EndpointID":"e1"}`, "DeleteEndpoint"},
		{"/NetworkDriver.EndpointOperInfo", `{"NetworkID":"n1","EndpointID":"e1"}`, "EndpointOperInfo"},
		{"/NetworkDriver.Join", `{"NetworkID":"n1","EndpointID":"e1","SandboxKey":"/k","Options":{}}`, "Join"},
		{"/NetworkDriver.Leave", `{"NetworkID":"n1","EndpointID":"e1"}`, "Leave"},
		{"/NetworkDriver.ProgramExternalConnectivity", `{"NetworkID":"n1","EndpointID":"e1","Options":{}}`, "ProgramExternalConnectivity"},
		{"/NetworkDriver.RevokeExternalConnectivity", `{"NetworkID":"n1","EndpointID":"e1"}`, "RevokeExternalConnectivity"},
		{"/IpamDriver.RequestPool", `{"AddressSpace":"CnetLocal","Pool":"","SubPool":"","Options":{},"V6":false}`, "RequestPool"},
		{"/IpamDriver.ReleasePool", `{"PoolID":"p4"}`, "ReleasePool"},
		{"/IpamDriver.RequestAddress", `{"PoolID":"p4","Address":"","Options":{}}`, "RequestAddress"},
		{"/IpamDriver.ReleaseAddress", `{"PoolID":"p4","Address":"172.18.0.7"}`, "ReleaseAddress"},
	} {
		t.Run(tc.backendMethod, func(t *testing.T) {
			b := &fakeBackend{errs: map[string]error{tc.backendMethod: errors.New(msg)}}
			status, body := post(t, NewHandler(b), http.MethodPost, tc.path, tc.body)
			if want := `{"Err":"network \"web\" has no free address"}`; status != 500 || body != want {
				t.Errorf("got %d %s, want 500 %s", status, body, want)
			}
		})
	}

	// A failed rollback of a refused endpoint is reported with the refusal.
	b := &fakeBackend{
		iface: EndpointInterface{MacAddress: "02:42:ac:12:00:09"},
		errs:  map[string]error{"DeleteEndpoint": errors.New("veth busy")},
	}
	status, body := post(t, NewHandler(b), http.MethodPost, "/NetworkDriver.CreateEndpoint",
		`{"NetworkID":"n1","EndpointID":"e1","Interface":{"Address":"","AddressIPv6":"","MacAddress":"02:42:ac:12:00:03"},"Options":{}}`)
	want := `{"Err":"endpoint e1: cnet chose MacAddress 02:42:ac:12:00:09 (dockerd gave 02:42:ac:12:00:03); removing the endpoint again: veth busy"}`
	if status != 500 || body != want {
		t.Errorf("got %d %s, want 500 %s", status, body, want)
	}
}

// TestBadRequests checks that a body that does not decode never reaches the backend and is
// answered 4xx with an Err naming the call.
func TestBadRequests(t *testing.T) {
	for _, tc := range []struct {
		name, path, body string
		wantStatus       int
		wantErr          string
	}{
		{"truncated", "/NetworkDriver.CreateNetwork", `{"NetworkID":`, 400,
			"decode NetworkDriver.CreateNetwork request: unexpected EOF"},
		{"empty body", "/NetworkDriver.Join", ``, 400,
			"decode NetworkDriver.Join request: empty body"},
		{"wrong type", "/NetworkDriver.DeleteNetwork", `{"NetworkID":7}`, 400,
			"decode NetworkDriver.DeleteNetwork request: json: cannot unmarshal number into Go struct field ids.NetworkID of type string"},
		{"IPAM options are strings", "/IpamDriver.RequestPool", `{"AddressSpace":"a","Options":{"k":1}}`, 400,
			"decode IpamDriver.RequestPool request: json: cannot unmarshal number into Go struct field RequestPoolRequest.Options of type string"},
		{"trailing data", "/IpamDriver.ReleasePool", `{"PoolID":"p"} {"PoolID":"q"}`, 400,
			"decode IpamDriver.ReleasePool request: unexpected data after the JSON value"},
		{"not an object", "/NetworkDriver.DiscoverNew", `[1,2]`, 400,
			"decode NetworkDriver.DiscoverNew request: json: cannot unmarshal array into Go value of type struct { DiscoveryType int; DiscoveryData json.RawMessage }"},
		{"too large", "/NetworkDriver.CreateNetwork",
			`{"NetworkID":"n1","Options":{"x":"` + strings.Repeat("a", maxBody) + `"}}`, 413,
			"decode NetworkDriver.CreateNetwork request: http: request body too large"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := &fakeBackend{}
			status, body := post(t, NewHandler(b), http.MethodPost, tc.path, tc.body)
			if status != tc.wantStatus {
				t.Errorf("status %d, want %d (body %s)", status, tc.wantStatus, body)
			}
			if !strings.HasPrefix(body, `{"Err":"`) || !strings.Contains(body, tc.wantErr) {
				t.Errorf("body %s, want an Err containing %q", body, tc.wantErr)
			}
			if len(b.calls) != 0 {
				t.Errorf("backend called: %v", b.calls)
			}
		})
	}
}
