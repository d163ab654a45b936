package api

import (
	"context"
	"net/http"
)

// CNIAttachRequest is POST /cni/add: put a network namespace that another runtime made
// (Podman, containerd, cnitool) on a cnet network, as the CNI plugin's ADD asks.
type CNIAttachRequest struct {
	// ContainerID is the runtime's (CNI_CONTAINERID); IfName the interface to create in
	// Netns (CNI_IFNAME, CNI_NETNS).
	ContainerID string `json:"ContainerID"`
	Netns       string `json:"Netns"`
	IfName      string `json:"IfName"`
	Network     string `json:"Network"` // the cnet network, by name or ID
	// Name is the container's name for cnet's DNS (K8S_POD_NAME, or the runtime's name);
	// Aliases are more names on the network.
	Name    string   `json:"Name,omitempty"`
	Aliases []string `json:"Aliases,omitempty"`
	IP      string   `json:"IP,omitempty"`  // a static IPv4 address (capability "ips", CNI_ARGS IP=)
	IP6     string   `json:"IP6,omitempty"` // a static IPv6 address (capability "ips")
	// MAC is the interface's MAC (capability "mac", CNI_ARGS MAC=); derived from the address
	// when empty, as for cnet's own containers.
	MAC string `json:"MAC,omitempty"`
	// PortMappings are published on the host (capability "portMappings").
	PortMappings []CNIPortMapping `json:"PortMappings,omitempty"`
}

// CNIPortMapping is one entry of the portMappings capability.
type CNIPortMapping struct {
	HostPort      int    `json:"hostPort"`
	ContainerPort int    `json:"containerPort"`
	Protocol      string `json:"protocol,omitempty"`
	HostIP        string `json:"hostIP,omitempty"`
}

// CNIAttachment is what an attachment is: the interface made and its address, for the
// plugin's result.
type CNIAttachment struct {
	ContainerID string `json:"ContainerID"`
	IfName      string `json:"IfName"`
	Netns       string `json:"Netns"`
	Network     string `json:"Network"`
	MacAddress  string `json:"MacAddress"`
	// Address is the interface's IPv4 address with its prefix length (10.0.0.5/24), empty on
	// an IPv6-only network; Address6 its IPv6 one on networks with IPv6. Gateway and Gateway6
	// are the default routes of each family, when the network gives one.
	Address  string `json:"Address"`
	Gateway  string `json:"Gateway,omitempty"`
	Address6 string `json:"Address6,omitempty"`
	Gateway6 string `json:"Gateway6,omitempty"`
	// DNS is the resolver to name in the result (cnet's embedded one, 127.0.0.11), empty on
	// networks where names do not resolve.
	DNS []string `json:"DNS,omitempty"`
}

// CNIDetachRequest is POST /cni/del: remove an attachment; one already gone, or whose
// namespace is gone, is not an error.
type CNIDetachRequest struct {
	ContainerID string `json:"ContainerID"`
	IfName      string `json:"IfName"`
	Network     string `json:"Network"`
}

// CNIAdd is the plugin's ADD.
func (c *Client) CNIAdd(ctx context.Context, req CNIAttachRequest) (CNIAttachment, error) {
	var out CNIAttachment
	err := c.call(ctx, http.MethodPost, "/cni/add", nil, req, &out)
	return out, err
}

// CNIDel is the plugin's DEL.
func (c *Client) CNIDel(ctx context.Context, req CNIDetachRequest) error {
	return c.call(ctx, http.MethodPost, "/cni/del", nil, req, nil)
}

// CNICheck is the plugin's CHECK: the attachment as the daemon has it, or an error if the
// daemon has none or its interface is gone.
func (c *Client) CNICheck(ctx context.Context, req CNIDetachRequest) (CNIAttachment, error) {
	var out CNIAttachment
	err := c.call(ctx, http.MethodPost, "/cni/check", nil, req, &out)
	return out, err
}

// CNIGCRequest is POST /cni/gc: every attachment on Network that is not in Valid goes (the
// runtime's cni.dev/valid-attachments).
type CNIGCRequest struct {
	Network string             `json:"Network"`
	Valid   []CNIDetachRequest `json:"Valid"`
}

// CNIGC is the plugin's GC; it returns how many attachments were removed.
func (c *Client) CNIGC(ctx context.Context, req CNIGCRequest) (int, error) {
	var out struct{ Removed int }
	err := c.call(ctx, http.MethodPost, "/cni/gc", nil, req, &out)
	return out.Removed, err
}
