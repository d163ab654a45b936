// Package dockerplugin serves Docker's remote NetworkDriver and IpamDriver plugin APIs
// (libnetwork's remote driver protocol) so that dockerd can put its containers on cnet's
// networks: `docker network create -d cnet --ipam-driver cnet`.
//
// The package only translates. It decodes what dockerd posts, hands the values to a Backend
// (the daemon) and encodes the answer the way dockerd's plugin client reads it; it keeps no
// state, so dockerd and cnet can each restart without this layer having anything to rebuild.
// Both APIs share one socket because dockerd looks a plugin up by name, and a single name
// ("cnet") is what a user types for both -d and --ipam-driver.
//
// The wire shapes follow moby's daemon/libnetwork/drivers/remote/api/api.go and
// daemon/libnetwork/ipams/remote/api/api.go; field names are the JSON names dockerd uses.
package dockerplugin

// DriverName is the name users give to `docker network create -d` and `--ipam-driver`. dockerd
// takes a legacy (v1) plugin's name from its socket's file name, so it must match SocketPath.
const DriverName = "cnet"

// SocketPath is where the daemon listens for dockerd. dockerd discovers legacy plugins by
// socket files named NAME.sock in /run/docker/plugins (moby pkg/plugins/discovery.go), so a
// socket here is found without any spec file or `docker plugin install`.
const SocketPath = "/run/docker/plugins/" + DriverName + ".sock"

// Backend is what the daemon does for each call. Errors are returned to dockerd as
// {"Err": msg}; dockerd prefixes msg with the call's name and shows it to the user.
type Backend interface {
	// DriverCapabilities returns the networks' scope, "local" or "global"; dockerd refuses to
	// register the driver for any other value.
	DriverCapabilities() (scope string)
	CreateNetwork(req CreateNetworkRequest) error
	DeleteNetwork(networkID string) error
	// CreateEndpoint returns only what dockerd did not give: a field set in req.Interface
	// must be empty in the result (dockerd fails the endpoint if a driver sets it again).
	CreateEndpoint(req CreateEndpointRequest) (EndpointInterface, error)
	DeleteEndpoint(networkID, endpointID string) error
	EndpointOperInfo(networkID, endpointID string) (map[string]any, error)
	Join(req JoinRequest) (JoinResponse, error)
	Leave(networkID, endpointID string) error
	ProgramExternalConnectivity(req ExternalConnectivityRequest) error
	RevokeExternalConnectivity(networkID, endpointID string) error

	DefaultAddressSpaces() (local, global string)
	RequestPool(req RequestPoolRequest) (RequestPoolResponse, error)
	ReleasePool(poolID string) error
	RequestAddress(req RequestAddressRequest) (RequestAddressResponse, error)
	ReleaseAddress(poolID, address string) error
}

// Options maps in requests hold what encoding/json makes of dockerd's values: strings, bools,
// float64 numbers, []any and map[string]any. PortBindings and GenericOptions decode the two
// entries cnet needs into typed values.

// CreateNetworkRequest is /NetworkDriver.CreateNetwork's body.
type CreateNetworkRequest struct {
	NetworkID string `json:"NetworkID"`
	// Options carries the network's generic data ("com.docker.network.generic": the -o
	// KEY=VAL map, see GenericOptions) and flags such as "com.docker.network.enable_ipv6".
	Options map[string]any `json:"Options"`
	// IPv4Data and IPv6Data are the pools dockerd got from the network's IPAM driver.
	IPv4Data []IPAMData `json:"IPv4Data"`
	IPv6Data []IPAMData `json:"IPv6Data"`
}

// IPAMData is one pool of a network as dockerd sends it to the network driver.
type IPAMData struct {
	AddressSpace string `json:"AddressSpace"`
	// Pool is the subnet in CIDR form ("172.18.0.0/16").
	Pool string `json:"Pool"`
	// Gateway is the gateway's address with the pool's prefix length ("172.18.0.1/16").
	Gateway string `json:"Gateway"`
	// AuxAddresses are the --aux-address reservations, each "ADDR/LEN" like Gateway.
	AuxAddresses map[string]string `json:"AuxAddresses"`
}

// CreateEndpointRequest is /NetworkDriver.CreateEndpoint's body.
type CreateEndpointRequest struct {
	NetworkID  string `json:"NetworkID"`
	EndpointID string `json:"EndpointID"`
	// Interface holds what dockerd already assigned (addresses from the IPAM driver, a MAC
	// given with --mac-address); nil or empty fields are the driver's to fill.
	Interface *EndpointInterface `json:"Interface"`
	Options   map[string]any     `json:"Options"`
}

// EndpointInterface is an endpoint's addresses: Address and AddressIPv6 in CIDR form
// ("172.18.0.2/16"), MacAddress as "02:42:ac:12:00:02".
type EndpointInterface struct {
	Address     string `json:"Address"`
	AddressIPv6 string `json:"AddressIPv6"`
	MacAddress  string `json:"MacAddress"`
}

// JoinRequest is /NetworkDriver.Join's body.
type JoinRequest struct {
	NetworkID  string `json:"NetworkID"`
	EndpointID string `json:"EndpointID"`
	// SandboxKey is the path of the container's network namespace.
	SandboxKey string `json:"SandboxKey"`
	// Options are the container's sandbox options: "com.docker.network.portmap" (see
	// PortBindings) and "com.docker.network.endpoint.exposedports".
	Options map[string]any `json:"Options"`
}

// JoinResponse tells dockerd how to finish the join. Empty fields are left out, as dockerd
// treats a missing field and an empty one alike.
type JoinResponse struct {
	// InterfaceName names the host-side interface dockerd moves into the sandbox.
	InterfaceName *InterfaceName `json:"InterfaceName,omitempty"`
	// Gateway and GatewayIPv6 are plain addresses ("172.18.0.1"), not CIDR.
	Gateway      string        `json:"Gateway,omitempty"`
	GatewayIPv6  string        `json:"GatewayIPv6,omitempty"`
	StaticRoutes []StaticRoute `json:"StaticRoutes,omitempty"`
	// DisableGatewayService stops dockerd from adding a docker_gwbridge interface when the
	// response sets no gateway (an internal network).
	DisableGatewayService bool `json:"DisableGatewayService,omitempty"`
}

// InterfaceName is the interface dockerd moves into the sandbox (SrcName) and the prefix of
// its name there (DstPrefix, "eth"): dockerd appends an index.
type InterfaceName struct {
	SrcName   string `json:"SrcName"`
	DstPrefix string `json:"DstPrefix"`
}

// StaticRoute is a route dockerd adds in the sandbox. RouteType is 0 for a route through
// NextHop and 1 for a connected route (no NextHop); Destination is CIDR.
type StaticRoute struct {
	Destination string `json:"Destination"`
	RouteType   int    `json:"RouteType"`
	NextHop     string `json:"NextHop,omitempty"`
}

// ExternalConnectivityRequest is /NetworkDriver.ProgramExternalConnectivity's body. dockerd
// sends it when the endpoint becomes the container's gateway endpoint (and sends
// RevokeExternalConnectivity when it stops being one), so that only that endpoint publishes
// the container's ports. Options are the Join's options (PortBindings decodes the ports),
// plus "com.docker.network.driver.private.no_proxy_6to4" when another endpoint is the IPv6
// gateway.
type ExternalConnectivityRequest struct {
	NetworkID  string         `json:"NetworkID"`
	EndpointID string         `json:"EndpointID"`
	Options    map[string]any `json:"Options"`
}

// RequestPoolRequest is /IpamDriver.RequestPool's body. Pool empty means "choose one" (an
// IPv6 one if V6); SubPool is --ip-range.
type RequestPoolRequest struct {
	AddressSpace string            `json:"AddressSpace"`
	Pool         string            `json:"Pool"`
	SubPool      string            `json:"SubPool"`
	Options      map[string]string `json:"Options"`
	V6           bool              `json:"V6"`
}

// RequestPoolResponse answers RequestPool; Pool is CIDR. The same pool must get the same
// PoolID.
type RequestPoolResponse struct {
	PoolID string            `json:"PoolID"`
	Pool   string            `json:"Pool"`
	Data   map[string]string `json:"Data,omitempty"`
}

// RequestAddressRequest is /IpamDriver.RequestAddress's body. Address is a plain address
// that must be given ("172.18.0.5"), or empty for any free one. Options carry
// "RequestAddressType": "com.docker.network.gateway" when dockerd asks for the gateway.
type RequestAddressRequest struct {
	PoolID  string            `json:"PoolID"`
	Address string            `json:"Address"`
	Options map[string]string `json:"Options"`
}

// RequestAddressResponse answers RequestAddress. Address is CIDR ("172.18.0.5/16"); an empty
// one makes dockerd fail the request.
type RequestAddressResponse struct {
	Address string            `json:"Address"`
	Data    map[string]string `json:"Data,omitempty"`
}
