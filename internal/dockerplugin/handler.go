package dockerplugin

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// contentType is what dockerd's plugin client puts in its Accept header (moby
// pkg/plugins/transport/mimetype.go, VersionMimetype). The client does not check a response's
// Content-Type, but answering in the type it asks for is what other plugins do.
const contentType = "application/vnd.docker.plugins.v1.2+json"

// maxBody bounds a request body. dockerd's largest bodies (a network with many aux addresses,
// a container with many published ports) are a few KiB; the bound keeps a confused or hostile
// client on the socket from making the daemon buffer without limit.
const maxBody = 1 << 20

// Status codes. dockerd's plugin client (moby pkg/plugins/client.go, callWithRetry) reads the
// body of any non-200 answer as {"Err": msg} and returns the error "Method: msg", which
// libnetwork passes up to the user (e.g. "failed to create endpoint web on network n1:
// NetworkDriver.CreateEndpoint: msg"). A 200 answer with an error field would work for the
// NetworkDriver calls only ("remote: msg"): the IpamDriver responses name that field "Error",
// and an "Err" in a 200 answer to an IPAM call would be taken for success. So every failure
// is a non-200 answer with "Err", for both APIs.
//
// Backend errors are 500 whatever their kind: 404 means "method not implemented" to dockerd,
// which then ignores the failure of ProgramExternalConnectivity and RevokeExternalConnectivity
// (moby daemon/libnetwork/drivers/remote/driver.go, plugins.IsNotFound), so a backend's "not
// found" must never reach dockerd as 404.
const (
	statusBackendError = http.StatusInternalServerError
	statusBadRequest   = http.StatusBadRequest
)

// route is one plugin method: whether dockerd sends a body, and what to do with it.
type route struct {
	// noBody marks the calls dockerd makes without a payload (Plugin.Activate and the
	// capability and address-space queries); their body, if any, is ignored.
	noBody bool
	// call decodes the body with decode (when there is one) and answers with a value to encode
	// as JSON, or an error for the backend's failure.
	call func(b Backend, decode func(any) error) (any, error)
}

// empty is the body of a successful answer that carries nothing: "{}".
type empty struct{}

// NewHandler returns the handler of both plugin APIs on one socket. It serves POST only:
// dockerd posts every call, even those without a body.
func NewHandler(b Backend) http.Handler {
	return &handler{b: b}
}

type handler struct{ b Backend }

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	method := strings.TrimPrefix(r.URL.Path, "/")
	rt, ok := routes[method]
	if !ok {
		// remote.md: an unknown URI must answer 404, so that libnetwork can tell a method this
		// plugin does not implement (yet) from one that failed.
		writeError(w, http.StatusNotFound, fmt.Sprintf("%s: not implemented by %s", r.URL.Path, DriverName))
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("%s: method %s not allowed, use POST", method, r.Method))
		return
	}

	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	var decodeErr error
	decode := func(v any) error {
		decodeErr = decodeBody(r.Body, v)
		if decodeErr != nil {
			return fmt.Errorf("decode %s request: %w", method, decodeErr)
		}
		return nil
	}
	if rt.noBody {
		decode = func(any) error { return nil }
	}

	resp, err := rt.call(h.b, decode)
	if err != nil {
		status := statusBackendError
		if decodeErr != nil {
			status = statusBadRequest
			if _, ok := errors.AsType[*http.MaxBytesError](decodeErr); ok {
				status = http.StatusRequestEntityTooLarge
			}
		}
		writeError(w, status, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// decodeBody decodes one JSON value, and refuses an empty body or data after the value, which
// would mean the caller and cnet disagree about the call's shape. Unknown fields are accepted:
// newer dockerd versions add fields, and an old cnet must not refuse them.
func decodeBody(body io.Reader, v any) error {
	dec := json.NewDecoder(body)
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return errors.New("empty body")
		}
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if err != nil {
			return err
		}
		return errors.New("unexpected data after the JSON value")
	}
	return nil
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, struct{ Err string }{msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		// Only a Backend's EndpointOperInfo value can fail to encode (a channel, a func).
		status = statusBackendError
		body, _ = json.Marshal(struct{ Err string }{fmt.Sprintf("encode response: %v", err)})
	}
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

// ids is the body of the calls that name an endpoint (or just a network) and nothing else.
type ids struct {
	NetworkID  string `json:"NetworkID"`
	EndpointID string `json:"EndpointID"`
}

// call builds a route whose body decodes into Req.
func call[Req any](f func(b Backend, req Req) (any, error)) route {
	return route{call: func(b Backend, decode func(any) error) (any, error) {
		var req Req
		if err := decode(&req); err != nil {
			return nil, err
		}
		return f(b, req)
	}}
}

// noBody builds a route for a call that dockerd makes without a payload.
func noBody(f func(b Backend) (any, error)) route {
	return route{noBody: true, call: func(b Backend, _ func(any) error) (any, error) { return f(b) }}
}

// done turns a backend's bare error into an answer: "{}" on success.
func done(err error) (any, error) {
	if err != nil {
		return nil, err
	}
	return empty{}, nil
}

var routes = map[string]route{
	"Plugin.Activate": noBody(func(Backend) (any, error) {
		return struct{ Implements []string }{[]string{"NetworkDriver", "IpamDriver"}}, nil
	}),

	"NetworkDriver.GetCapabilities": noBody(func(b Backend) (any, error) {
		scope := b.DriverCapabilities()
		if scope != "local" && scope != "global" {
			return nil, fmt.Errorf("invalid driver scope %q: want local or global", scope)
		}
		// GwAllocChecker is left out (false): cnet lets dockerd reserve gateways as usual, and
		// dockerd then never posts /NetworkDriver.GwAllocCheck.
		return struct{ Scope, ConnectivityScope string }{scope, scope}, nil
	}),
	"NetworkDriver.CreateNetwork": call(func(b Backend, req CreateNetworkRequest) (any, error) {
		return done(b.CreateNetwork(req))
	}),
	"NetworkDriver.DeleteNetwork": call(func(b Backend, req ids) (any, error) {
		return done(b.DeleteNetwork(req.NetworkID))
	}),
	"NetworkDriver.CreateEndpoint": call(createEndpoint),
	"NetworkDriver.DeleteEndpoint": call(func(b Backend, req ids) (any, error) {
		return done(b.DeleteEndpoint(req.NetworkID, req.EndpointID))
	}),
	"NetworkDriver.EndpointOperInfo": call(func(b Backend, req ids) (any, error) {
		v, err := b.EndpointOperInfo(req.NetworkID, req.EndpointID)
		if err != nil {
			return nil, err
		}
		if v == nil {
			v = map[string]any{} // remote.md: "Value" is a map, possibly empty, never null
		}
		return struct{ Value map[string]any }{v}, nil
	}),
	"NetworkDriver.Join": call(func(b Backend, req JoinRequest) (any, error) {
		return b.Join(req)
	}),
	"NetworkDriver.Leave": call(func(b Backend, req ids) (any, error) {
		return done(b.Leave(req.NetworkID, req.EndpointID))
	}),
	"NetworkDriver.ProgramExternalConnectivity": call(func(b Backend, req ExternalConnectivityRequest) (any, error) {
		return done(b.ProgramExternalConnectivity(req))
	}),
	"NetworkDriver.RevokeExternalConnectivity": call(func(b Backend, req ids) (any, error) {
		return done(b.RevokeExternalConnectivity(req.NetworkID, req.EndpointID))
	}),
	// Node discovery is swarm's: dockerd sends it only to drivers of a swarm-mode engine, to
	// say which nodes joined or left. cnet learns its hosts from its own cluster store, so the
	// notifications are acknowledged and dropped.
	"NetworkDriver.DiscoverNew":    call(discovery),
	"NetworkDriver.DiscoverDelete": call(discovery),
	// AllocateNetwork and FreeNetwork are deliberately not in this table, so they answer 404:
	// only a swarm manager calls them, to allocate a global-scope network for a swarm service,
	// and cnet's global networks are allocated in cnet's cluster store instead. A 404 tells
	// dockerd the method is not implemented, and swarm fails that service's network plainly.

	"IpamDriver.GetCapabilities": noBody(func(Backend) (any, error) {
		// cnet persists its allocations, so dockerd need not replay RequestPool and the
		// gateways' RequestAddress after its own restart; and cnet's allocator chooses
		// addresses without knowing the endpoint's MAC.
		return struct{ RequiresMACAddress, RequiresRequestReplay bool }{false, false}, nil
	}),
	"IpamDriver.GetDefaultAddressSpaces": noBody(func(b Backend) (any, error) {
		local, global := b.DefaultAddressSpaces()
		return struct{ LocalDefaultAddressSpace, GlobalDefaultAddressSpace string }{local, global}, nil
	}),
	"IpamDriver.RequestPool": call(func(b Backend, req RequestPoolRequest) (any, error) {
		return b.RequestPool(req)
	}),
	"IpamDriver.ReleasePool": call(func(b Backend, req struct{ PoolID string }) (any, error) {
		return done(b.ReleasePool(req.PoolID))
	}),
	"IpamDriver.RequestAddress": call(func(b Backend, req RequestAddressRequest) (any, error) {
		return b.RequestAddress(req)
	}),
	"IpamDriver.ReleaseAddress": call(func(b Backend, req struct{ PoolID, Address string }) (any, error) {
		return done(b.ReleaseAddress(req.PoolID, req.Address))
	}),
}

// discovery decodes a DiscoverNew or DiscoverDelete notification only to check its shape.
func discovery(_ Backend, _ struct {
	DiscoveryType int
	DiscoveryData json.RawMessage
}) (any, error) {
	return empty{}, nil
}

// createEndpoint answers with only the interface fields dockerd left empty. dockerd refuses
// an answer that sets a field it gave (remote.md: "it must respond with an empty Interface
// value", and libnetwork's SetMacAddress and SetIPAddress fail on a set field), so a backend's
// echo of dockerd's own value is dropped. A different value is a disagreement that dockerd
// would otherwise resolve silently in its own favour: the endpoint is deleted again (dockerd
// does not do it when CreateEndpoint fails) and the call fails.
func createEndpoint(b Backend, req CreateEndpointRequest) (any, error) {
	got, err := b.CreateEndpoint(req)
	if err != nil {
		return nil, err
	}
	var given EndpointInterface
	if req.Interface != nil {
		given = *req.Interface
	}
	resp := got
	var conflicts []string
	for _, f := range []struct {
		name       string
		given, got string
		resp       *string
		same       func(a, b string) bool
	}{
		{"Address", given.Address, got.Address, &resp.Address, samePrefix},
		{"AddressIPv6", given.AddressIPv6, got.AddressIPv6, &resp.AddressIPv6, samePrefix},
		{"MacAddress", given.MacAddress, got.MacAddress, &resp.MacAddress, sameMAC},
	} {
		if f.given == "" || f.got == "" {
			continue
		}
		if !f.same(f.given, f.got) {
			conflicts = append(conflicts, fmt.Sprintf("%s %s (dockerd gave %s)", f.name, f.got, f.given))
		}
		*f.resp = ""
	}
	if len(conflicts) > 0 {
		err := fmt.Errorf("endpoint %s: %s chose %s", req.EndpointID, DriverName, strings.Join(conflicts, ", "))
		if derr := b.DeleteEndpoint(req.NetworkID, req.EndpointID); derr != nil {
			return nil, fmt.Errorf("%w; removing the endpoint again: %w", err, derr)
		}
		return nil, err
	}
	if resp == (EndpointInterface{}) {
		return empty{}, nil
	}
	return struct{ Interface EndpointInterface }{resp}, nil
}

func samePrefix(a, b string) bool {
	pa, errA := netip.ParsePrefix(a)
	pb, errB := netip.ParsePrefix(b)
	if errA != nil || errB != nil {
		return a == b
	}
	return pa == pb
}

func sameMAC(a, b string) bool {
	ma, errA := net.ParseMAC(a)
	mb, errB := net.ParseMAC(b)
	if errA != nil || errB != nil {
		return a == b
	}
	return ma.String() == mb.String()
}
