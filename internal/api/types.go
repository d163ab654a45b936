// Package api holds the wire types of cnet's HTTP+JSON API. They follow the Docker Engine API
// (v1.24 to v1.43) field for field, so that output rendered from them matches what docker prints and so
// that Docker's own client can later talk to cnet.
package api

import "time"

// Version is the newest Docker Engine API version cnet serves (MinVersion the oldest); requests
// may carry a "/vX.Y" path prefix in that range, which the server strips. 1.42 and 1.43 differ
// from 1.41 only in what cnet does not have (volumes, builds, swarm), so serving them is free,
// and clients that negotiate (the docker CLI 28, docker-py) then speak 1.43.
const Version = "1.43"

// ErrorResponse is the body of every non-2xx answer.
type ErrorResponse struct {
	Message string `json:"message"`
}

// IPAMConfig is one pool of a network.
type IPAMConfig struct {
	Subnet             string            `json:"Subnet,omitempty"`
	IPRange            string            `json:"IPRange,omitempty"`
	Gateway            string            `json:"Gateway,omitempty"`
	AuxiliaryAddresses map[string]string `json:"AuxiliaryAddresses,omitempty"`
}

// IPAM is a network's address management section.
type IPAM struct {
	Driver  string            `json:"Driver"`
	Options map[string]string `json:"Options"`
	Config  []IPAMConfig      `json:"Config"`
}

// ConfigReference names a config-only network (always empty in cnet, kept for shape).
type ConfigReference struct {
	Network string `json:"Network"`
}

// EndpointResource is one container's attachment as shown in network inspect.
type EndpointResource struct {
	Name        string `json:"Name"`
	EndpointID  string `json:"EndpointID"`
	MacAddress  string `json:"MacAddress"`
	IPv4Address string `json:"IPv4Address"`
	IPv6Address string `json:"IPv6Address"`
}

// Network is GET /networks and GET /networks/{id}.
type Network struct {
	Name    string    `json:"Name"`
	ID      string    `json:"Id"`
	Created time.Time `json:"Created"`
	Scope   string    `json:"Scope"`
	Driver  string    `json:"Driver"`
	// EnableIPv4 (API 1.47's) is shown only as false, on IPv6-only networks: Docker 20.10's
	// inspect, which the seeds show, has no such field.
	EnableIPv4 *bool                       `json:"EnableIPv4,omitempty"`
	EnableIPv6 bool                        `json:"EnableIPv6"`
	IPAM       IPAM                        `json:"IPAM"`
	Internal   bool                        `json:"Internal"`
	Attachable bool                        `json:"Attachable"`
	Ingress    bool                        `json:"Ingress"`
	ConfigFrom ConfigReference             `json:"ConfigFrom"`
	ConfigOnly bool                        `json:"ConfigOnly"`
	Containers map[string]EndpointResource `json:"Containers"`
	Options    map[string]string           `json:"Options"`
	Labels     map[string]string           `json:"Labels"`
	// Peers (verbose inspect of a global network) are the other hosts with endpoints on
	// it, as Docker shows them: host name and tunnel endpoint.
	Peers []PeerInfo `json:"Peers,omitempty"`
	// Diagnosis (verbose inspect of a global network, cnet's own) compares each remote
	// endpoint in the cluster store with this host's kernel entries.
	Diagnosis []PeerDiagnosis `json:"Diagnosis,omitempty"`
}

// PeerInfo is one peer host of a global network.
type PeerInfo struct {
	Name string `json:"Name"`
	IP   string `json:"IP"`
}

// PeerDiagnosis is one remote endpoint: the cluster store's view, the kernel's, and Status,
// "ok" or what differs.
type PeerDiagnosis struct {
	Endpoint   string   `json:"Endpoint"`
	Names      []string `json:"Names"`
	Host       string   `json:"Host"`
	IP         string   `json:"IP"`
	MAC        string   `json:"MacAddress"`
	VTEP       string   `json:"VTEP"`
	KernelVTEP string   `json:"KernelVTEP"`
	KernelIP   string   `json:"KernelIP"`
	Status     string   `json:"Status"`
}

// NetworkCreateRequest is the body of POST /networks/create.
type NetworkCreateRequest struct {
	Name           string `json:"Name"`
	CheckDuplicate bool   `json:"CheckDuplicate,omitempty"`
	Driver         string `json:"Driver,omitempty"`
	EnableIPv6     bool   `json:"EnableIPv6,omitempty"`
	// EnableIPv4 (API 1.47, Docker's --ipv4): false makes an IPv6-only network; absent is true.
	EnableIPv4 *bool             `json:"EnableIPv4,omitempty"`
	IPAM       *IPAM             `json:"IPAM,omitempty"`
	Internal   bool              `json:"Internal,omitempty"`
	Attachable bool              `json:"Attachable,omitempty"`
	Options    map[string]string `json:"Options,omitempty"`
	Labels     map[string]string `json:"Labels,omitempty"`
}

// NetworkCreateResponse answers POST /networks/create.
type NetworkCreateResponse struct {
	ID      string `json:"Id"`
	Warning string `json:"Warning"`
}

// EndpointIPAMConfig asks for a static address on one network.
type EndpointIPAMConfig struct {
	IPv4Address string `json:"IPv4Address,omitempty"`
	IPv6Address string `json:"IPv6Address,omitempty"`
}

// EndpointSettings is a container's attachment to one network: what is asked for on connect
// and create, and what inspect shows.
type EndpointSettings struct {
	IPAMConfig          *EndpointIPAMConfig `json:"IPAMConfig"`
	Links               []string            `json:"Links"`
	Aliases             []string            `json:"Aliases"`
	NetworkID           string              `json:"NetworkID"`
	EndpointID          string              `json:"EndpointID"`
	Gateway             string              `json:"Gateway"`
	IPAddress           string              `json:"IPAddress"`
	IPPrefixLen         int                 `json:"IPPrefixLen"`
	IPv6Gateway         string              `json:"IPv6Gateway"`
	GlobalIPv6Address   string              `json:"GlobalIPv6Address"`
	GlobalIPv6PrefixLen int                 `json:"GlobalIPv6PrefixLen"`
	MacAddress          string              `json:"MacAddress"`
	DriverOpts          map[string]string   `json:"DriverOpts"`
}

// NetworkConnectRequest is the body of POST /networks/{id}/connect.
type NetworkConnectRequest struct {
	Container      string            `json:"Container"`
	EndpointConfig *EndpointSettings `json:"EndpointConfig,omitempty"`
}

// NetworkDisconnectRequest is the body of POST /networks/{id}/disconnect.
type NetworkDisconnectRequest struct {
	Container string `json:"Container"`
	Force     bool   `json:"Force"`
}

// NetworksPruneResponse answers POST /networks/prune.
type NetworksPruneResponse struct {
	NetworksDeleted []string `json:"NetworksDeleted"`
}

// ContainerConfig is the portable part of a container's configuration (Docker's Config).
// Image, when set, names an image in cnet's store to run from (its layers as the root, its
// Entrypoint, Cmd, Env, WorkingDir and ExposedPorts applied as Docker applies them); empty, the
// command runs from the host's filesystem, or from Rootfs, cnet's extension: a directory to
// chroot into.
type ContainerConfig struct {
	Hostname   string `json:"Hostname"`
	Domainname string `json:"Domainname"`
	// User is -u: name, uid, name:group or uid:gid in the container's files; "" is the
	// image's, else root.
	User         string   `json:"User"`
	AttachStdin  bool     `json:"AttachStdin"`
	AttachStdout bool     `json:"AttachStdout"`
	AttachStderr bool     `json:"AttachStderr"`
	Tty          bool     `json:"Tty"`
	OpenStdin    bool     `json:"OpenStdin"`
	StdinOnce    bool     `json:"StdinOnce"`
	Env          []string `json:"Env"`
	Cmd          []string `json:"Cmd"`
	// Entrypoint, when not nil, replaces the image's (--entrypoint; [] clears it).
	Entrypoint []string `json:"Entrypoint"`
	Image      string   `json:"Image"`
	// ExposedPorts are "80/tcp" keys, as Docker's (--expose).
	ExposedPorts map[string]struct{} `json:"ExposedPorts,omitempty"`
	WorkingDir   string              `json:"WorkingDir"`
	Labels       map[string]string   `json:"Labels"`
	Rootfs       string              `json:"Rootfs,omitempty"`
}

// HostConfig is the host-dependent part of a container's configuration.
type HostConfig struct {
	NetworkMode string   `json:"NetworkMode"`
	AutoRemove  bool     `json:"AutoRemove"`
	Links       []string `json:"Links"` // "name:alias"; inspect shows Docker's "/name:/self/alias"
	DNS         []string `json:"Dns"`
	DNSSearch   []string `json:"DnsSearch"`
	DNSOptions  []string `json:"DnsOptions"`
	ExtraHosts  []string `json:"ExtraHosts"` // --add-host "host:ip"
	// PortBindings are -p: "80/tcp" → host sides ({"HostIp": "", "HostPort": "8080"}; a
	// HostPort "8000-8010" asks for one free port of the range, "" for a random one).
	PortBindings    map[string][]PortBinding `json:"PortBindings"`
	PublishAllPorts bool                     `json:"PublishAllPorts"` // -P
	// ConsoleSize is a -t container's first terminal size, rows and columns (API 1.42).
	ConsoleSize *[2]uint16 `json:"ConsoleSize,omitempty"`
}

// NetworkingConfig carries the endpoint settings asked for at create time.
type NetworkingConfig struct {
	EndpointsConfig map[string]*EndpointSettings `json:"EndpointsConfig"`
}

// ContainerCreateRequest is the body of POST /containers/create?name=NAME.
type ContainerCreateRequest struct {
	ContainerConfig
	HostConfig       *HostConfig       `json:"HostConfig,omitempty"`
	NetworkingConfig *NetworkingConfig `json:"NetworkingConfig,omitempty"`
}

// ContainerCreateResponse answers POST /containers/create.
type ContainerCreateResponse struct {
	ID       string   `json:"Id"`
	Warnings []string `json:"Warnings"`
}

// ContainerState is the State section of container inspect.
type ContainerState struct {
	Status     string `json:"Status"` // created, running, exited
	Running    bool   `json:"Running"`
	Paused     bool   `json:"Paused"`
	Restarting bool   `json:"Restarting"`
	OOMKilled  bool   `json:"OOMKilled"`
	Dead       bool   `json:"Dead"`
	Pid        int    `json:"Pid"`
	ExitCode   int    `json:"ExitCode"`
	Error      string `json:"Error"`
	StartedAt  string `json:"StartedAt"`
	FinishedAt string `json:"FinishedAt"`
}

// NetworkSettings is the NetworkSettings section of container inspect. The top-level address
// fields describe the default bridge network only, as Docker's do.
type NetworkSettings struct {
	Bridge                 string                       `json:"Bridge"`
	SandboxID              string                       `json:"SandboxID"`
	SandboxKey             string                       `json:"SandboxKey"`
	Ports                  map[string][]PortBinding     `json:"Ports"`
	EndpointID             string                       `json:"EndpointID"`
	Gateway                string                       `json:"Gateway"`
	GlobalIPv6Address      string                       `json:"GlobalIPv6Address"`
	GlobalIPv6PrefixLen    int                          `json:"GlobalIPv6PrefixLen"`
	IPAddress              string                       `json:"IPAddress"`
	IPPrefixLen            int                          `json:"IPPrefixLen"`
	IPv6Gateway            string                       `json:"IPv6Gateway"`
	MacAddress             string                       `json:"MacAddress"`
	SecondaryIPAddresses   []string                     `json:"SecondaryIPAddresses"`
	SecondaryIPv6Addresses []string                     `json:"SecondaryIPv6Addresses"`
	Networks               map[string]*EndpointSettings `json:"Networks"`
}

// PortBinding is one host side of a published port.
type PortBinding struct {
	HostIP   string `json:"HostIp"`
	HostPort string `json:"HostPort"`
}

// ContainerJSON is GET /containers/{id}/json.
type ContainerJSON struct {
	ID              string           `json:"Id"`
	Created         time.Time        `json:"Created"`
	Path            string           `json:"Path"`
	Args            []string         `json:"Args"`
	State           *ContainerState  `json:"State"`
	Image           string           `json:"Image"`
	ResolvConfPath  string           `json:"ResolvConfPath"`
	HostnamePath    string           `json:"HostnamePath"`
	HostsPath       string           `json:"HostsPath"`
	LogPath         string           `json:"LogPath"`
	Name            string           `json:"Name"` // with the leading "/", as Docker's
	RestartCount    int              `json:"RestartCount"`
	Driver          string           `json:"Driver"`
	Platform        string           `json:"Platform"`
	HostConfig      *HostConfig      `json:"HostConfig"`
	Config          *ContainerConfig `json:"Config"`
	NetworkSettings *NetworkSettings `json:"NetworkSettings"`
}

// Port is one entry of the Ports list in GET /containers/json.
type Port struct {
	IP          string `json:"IP,omitempty"`
	PrivatePort uint16 `json:"PrivatePort"`
	PublicPort  uint16 `json:"PublicPort,omitempty"`
	Type        string `json:"Type"`
}

// SummaryNetworkSettings is the NetworkSettings of GET /containers/json.
type SummaryNetworkSettings struct {
	Networks map[string]*EndpointSettings `json:"Networks"`
}

// ContainerSummary is one element of GET /containers/json.
type ContainerSummary struct {
	ID              string                       `json:"Id"`
	Names           []string                     `json:"Names"` // with the leading "/"
	Image           string                       `json:"Image"`
	ImageID         string                       `json:"ImageID"`
	Command         string                       `json:"Command"`
	Created         int64                        `json:"Created"` // unix seconds
	Ports           []Port                       `json:"Ports"`
	SizeRw          int64                        `json:"SizeRw,omitempty"`
	SizeRootFs      int64                        `json:"SizeRootFs,omitempty"`
	Labels          map[string]string            `json:"Labels"`
	State           string                       `json:"State"`
	Status          string                       `json:"Status"` // "Up 5 seconds", "Exited (0) 3 minutes ago"
	HostConfig      struct{ NetworkMode string } `json:"HostConfig"`
	NetworkSettings *SummaryNetworkSettings      `json:"NetworkSettings"`
}

// ContainersPruneResponse answers POST /containers/prune.
type ContainersPruneResponse struct {
	ContainersDeleted []string `json:"ContainersDeleted"`
	SpaceReclaimed    int64    `json:"SpaceReclaimed"`
}

// ContainerWaitResponse answers POST /containers/{id}/wait.
type ContainerWaitResponse struct {
	StatusCode int `json:"StatusCode"`
}

// ExecCreateRequest is the body of POST /containers/{id}/exec.
type ExecCreateRequest struct {
	AttachStdin  bool     `json:"AttachStdin"`
	AttachStdout bool     `json:"AttachStdout"`
	AttachStderr bool     `json:"AttachStderr"`
	Tty          bool     `json:"Tty"`
	Env          []string `json:"Env"`
	Cmd          []string `json:"Cmd"`
	WorkingDir   string   `json:"WorkingDir"`
	// User is exec -u; "" is the container's user.
	User string `json:"User,omitempty"`
	// ConsoleSize is a -t exec's first terminal size, rows and columns (API 1.42).
	ConsoleSize *[2]uint16 `json:"ConsoleSize,omitempty"`
}

// IDResponse answers calls that create something identified by an id.
type IDResponse struct {
	ID string `json:"Id"`
}

// ExecInspect is GET /exec/{id}/json.
type ExecInspect struct {
	ID            string        `json:"ID"`
	Running       bool          `json:"Running"`
	ExitCode      *int          `json:"ExitCode"`
	ProcessConfig ProcessConfig `json:"ProcessConfig"`
	OpenStdin     bool          `json:"OpenStdin"`
	OpenStderr    bool          `json:"OpenStderr"`
	OpenStdout    bool          `json:"OpenStdout"`
	CanRemove     bool          `json:"CanRemove"`
	ContainerID   string        `json:"ContainerID"`
	DetachKeys    string        `json:"DetachKeys"`
	Pid           int           `json:"Pid"`
}

// ProcessConfig is an exec's command as GET /exec/{id}/json shows it (dockerpty, which
// Compose uses, reads tty from it).
type ProcessConfig struct {
	Tty        bool     `json:"tty"`
	Entrypoint string   `json:"entrypoint"`
	Arguments  []string `json:"arguments"`
	Privileged bool     `json:"privileged"`
	User       string   `json:"user,omitempty"`
}

// ExecStartRequest is the body of POST /exec/{id}/start (which then upgrades to a raw stream).
type ExecStartRequest struct {
	Detach bool `json:"Detach"`
	Tty    bool `json:"Tty"`
}
