package cniplugin

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/cnet-dev/cnet/internal/api"
)

// NetConf is the network configuration the runtime hands the plugin on stdin. The CNI
// network ("name") and the cnet network ("network") are different things: the runtime's
// configuration names the cnet network to attach to, so that one cnet network can be
// reached from several runtimes' configurations.
type NetConf struct {
	types.PluginConf

	// Network is the cnet network, by name or ID. Required: there is no sensible default,
	// and guessing "bridge" would put pods on Docker-style containers' network unasked.
	Network string `json:"network"`
	// Host is the daemon's socket; empty means api.DefaultHost.
	Host string `json:"host,omitempty"`

	RuntimeConfig RuntimeConfig `json:"runtimeConfig"`
}

// RuntimeConfig holds the capabilities the runtime fills in per container (CNI conventions:
// portMappings, aliases, ips, mac).
type RuntimeConfig struct {
	PortMappings []api.CNIPortMapping `json:"portMappings,omitempty"`
	Aliases      Aliases              `json:"aliases,omitempty"`
	IPs          []string             `json:"ips,omitempty"`
	MAC          string               `json:"mac,omitempty"`
}

// Aliases is the "aliases" capability, which exists in two shapes: a plain list of names, and
// Podman 4.3's map from network name to names (one runtimeConfig serves every network of the
// container there). Both must be accepted, since the plugin cannot know which runtime calls it.
type Aliases struct {
	List   []string
	ByName map[string][]string
}

// UnmarshalJSON accepts a list, a map of lists, or null.
func (a *Aliases) UnmarshalJSON(b []byte) error {
	*a = Aliases{}
	if string(b) == "null" {
		return nil
	}
	if err := json.Unmarshal(b, &a.List); err == nil {
		return nil
	}
	a.List = nil
	if err := json.Unmarshal(b, &a.ByName); err != nil {
		return fmt.Errorf("runtimeConfig.aliases must be a list of names or a map from network name to names: %s", b)
	}
	return nil
}

// For returns the aliases meant for this attachment: the list as given, or the map's entry for
// the CNI network name (Podman keys it so), falling back to the cnet network's name for
// runtimes that key it by the network the plugin attaches to.
func (a Aliases) For(cniName, cnetNetwork string) []string {
	if a.ByName == nil {
		return a.List
	}
	if names, ok := a.ByName[cniName]; ok {
		return names
	}
	return a.ByName[cnetNetwork]
}

// Args are the CNI_ARGS keys the plugin reads. The Kubernetes keys that containerd and CRI-O
// always send are declared too, so that a runtime that forgets IgnoreUnknown=1 is not refused
// over keys cnet does not need. Field names are the keys as sent, underscores included.
type Args struct {
	types.CommonArgs
	K8S_POD_NAME               types.UnmarshallableString
	K8S_POD_NAMESPACE          types.UnmarshallableString
	K8S_POD_INFRA_CONTAINER_ID types.UnmarshallableString
	K8S_POD_UID                types.UnmarshallableString
	IP                         types.UnmarshallableString
	MAC                        types.UnmarshallableString
}

// parseConfig decodes stdin, applies the defaults and parses a prevResult. Errors are
// *types.Error with the code the spec gives for bad configuration, so the runtime can tell a
// misconfiguration from a daemon that is down.
func parseConfig(stdin []byte) (*NetConf, error) {
	conf := &NetConf{}
	if err := json.Unmarshal(stdin, conf); err != nil {
		return nil, types.NewError(types.ErrDecodingFailure, "cnet: decoding the network configuration: "+err.Error(), "")
	}
	if conf.Network == "" {
		return nil, types.NewError(types.ErrInvalidNetworkConfig,
			fmt.Sprintf(`cnet: network configuration %q names no cnet network: set "network" to a network of `+"`cnet network ls`", conf.Name), "")
	}
	if conf.Host == "" {
		conf.Host = api.DefaultHost
	}
	if err := version.ParsePrevResult(&conf.PluginConf); err != nil {
		return nil, types.NewError(types.ErrDecodingFailure, "cnet: "+err.Error(), "")
	}
	return conf, nil
}

// parseArgs reads CNI_ARGS.
func parseArgs(s string) (*Args, error) {
	args := &Args{}
	if err := types.LoadArgs(s, args); err != nil {
		return nil, types.NewError(types.ErrInvalidEnvironmentVariables, "cnet: CNI_ARGS: "+err.Error(), "")
	}
	return args, nil
}

// attachRequest turns the configuration, CNI_ARGS and the runtime's environment into the
// daemon's request. A requested MAC (the mac capability, or CNI_ARGS MAC=) is passed on; the
// daemon checks it.
func attachRequest(conf *NetConf, args *Args, containerID, netns, ifName string) (api.CNIAttachRequest, error) {
	ip, ip6, err := staticIPs(conf.RuntimeConfig.IPs, string(args.IP))
	if err != nil {
		return api.CNIAttachRequest{}, err
	}
	return api.CNIAttachRequest{
		ContainerID:  containerID,
		Netns:        netns,
		IfName:       ifName,
		Network:      conf.Network,
		Name:         string(args.K8S_POD_NAME),
		Aliases:      conf.RuntimeConfig.Aliases.For(conf.Name, conf.Network),
		IP:           ip,
		IP6:          ip6,
		PortMappings: conf.RuntimeConfig.PortMappings,
		MAC:          firstNonEmpty(conf.RuntimeConfig.MAC, string(args.MAC)),
	}, nil
}

// staticIPs picks the requested addresses, one per family at most: the "ips" capability first
// (the runtime's structured way), else CNI_ARGS IP=. The prefix lengths are dropped because the
// network's subnets decide them. Two addresses of one family are refused: cnet gives an
// attachment one address of each family its network has, and quietly dropping one would leave
// the container without an address it was promised.
func staticIPs(ips []string, argIP string) (ip4, ip6 string, err error) {
	from := "runtimeConfig.ips"
	if len(ips) == 0 && argIP != "" {
		ips, from = []string{argIP}, "CNI_ARGS IP"
	}
	for _, raw := range ips {
		addr, _, _ := strings.Cut(raw, "/")
		a, perr := netip.ParseAddr(addr)
		if perr != nil || a.Zone() != "" {
			code := types.ErrInvalidNetworkConfig
			if from == "CNI_ARGS IP" {
				code = types.ErrInvalidEnvironmentVariables
			}
			return "", "", types.NewError(code, fmt.Sprintf("cnet: %s: %q is not an IP address", from, raw), "")
		}
		a = a.Unmap()
		slot := &ip4
		if a.Is6() {
			slot = &ip6
		}
		if *slot != "" {
			return "", "", types.NewError(types.ErrUnsupportedField,
				fmt.Sprintf("cnet: %s asks for two addresses of one family (%s); cnet gives an attachment one of each", from, strings.Join(ips, ", ")), "")
		}
		*slot = a.String()
	}
	return ip4, ip6, nil
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
