package cniplugin

import (
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/cnet-dev/cnet/internal/api"
)

// buildResult describes the daemon's attachment as a CNI result. When the plugin is chained
// after another (prev is the previous plugin's result), ours is appended to it: the runtime
// keeps only the last plugin's result, so dropping prev would lose the other plugin's
// interfaces and addresses.
func buildResult(att api.CNIAttachment, netns string, prev types.Result) (*current.Result, error) {
	res := &current.Result{CNIVersion: current.ImplementedSpecVersion}
	if prev != nil {
		var err error
		if res, err = current.NewResultFromResult(prev); err != nil {
			return nil, fmt.Errorf("cnet: converting the previous plugin's result: %w", err)
		}
	}
	idx := len(res.Interfaces)
	res.Interfaces = append(res.Interfaces, &current.Interface{Name: att.IfName, Mac: att.MacAddress, Sandbox: netns})
	for _, fam := range [][2]string{{att.Address, att.Gateway}, {att.Address6, att.Gateway6}} {
		if fam[0] == "" {
			continue
		}
		addr, err := parseAddress(fam[0])
		if err != nil {
			return nil, err
		}
		var gw net.IP
		if fam[1] != "" {
			if gw = normalizeIP(net.ParseIP(fam[1])); gw == nil {
				return nil, fmt.Errorf("cnet: the daemon answered with gateway %q, which is not an IP address", fam[1])
			}
		}
		res.IPs = append(res.IPs, &current.IPConfig{Interface: current.Int(idx), Address: addr, Gateway: gw})
		if gw != nil {
			dst := net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}
			if gw.To4() == nil {
				dst = net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}
			}
			res.Routes = append(res.Routes, &types.Route{Dst: dst, GW: gw})
		}
	}
	if len(att.DNS) > 0 {
		res.DNS.Nameservers = append(res.DNS.Nameservers, att.DNS...)
	}
	return res, nil
}

// printResult is types.PrintResult with the writer chosen by the caller, so that tests read
// what the runtime would.
func printResult(w io.Writer, res types.Result, cniVersion string) error {
	out, err := res.GetAsVersion(cniVersion)
	if err != nil {
		return types.NewError(types.ErrIncompatibleCNIVersion, "cnet: "+err.Error(), "")
	}
	return out.PrintTo(w)
}

// parseAddress reads "10.0.0.5/24" keeping the host address (net.ParseCIDR's IPNet would
// give the network's, 10.0.0.0/24, which is not what the interface carries).
func parseAddress(s string) (net.IPNet, error) {
	ip, n, err := net.ParseCIDR(s)
	if err != nil {
		return net.IPNet{}, fmt.Errorf("cnet: the daemon answered with address %q, which is not an address with a prefix length", s)
	}
	return net.IPNet{IP: normalizeIP(ip), Mask: n.Mask}, nil
}

// normalizeIP gives IPv4 addresses their 4-byte form, so that results compare and convert
// (0.4.0's "version" field) the same whichever way an address was parsed.
func normalizeIP(ip net.IP) net.IP {
	if v4 := ip.To4(); v4 != nil {
		return v4
	}
	return ip
}

// checkAgainst is CHECK's comparison: the runtime's prevResult (what ADD reported, possibly
// extended by later plugins) must still describe the attachment the daemon has. It looks for
// our interface by name (and sandbox, when both are known), then for our address on it.
func checkAgainst(prev types.Result, att api.CNIAttachment, ifName, netns string) error {
	res, err := current.NewResultFromResult(prev)
	if err != nil {
		return types.NewError(types.ErrDecodingFailure, "cnet: reading prevResult: "+err.Error(), "")
	}
	idx := -1
	for i, itf := range res.Interfaces {
		if itf.Name == ifName && (itf.Sandbox == "" || netns == "" || itf.Sandbox == netns) {
			idx = i
			break
		}
	}
	if idx < 0 {
		return mismatch("prevResult has no interface %s in %s", ifName, netns)
	}
	if want := res.Interfaces[idx].Mac; want != "" && !sameMAC(want, att.MacAddress) {
		return mismatch("interface %s has MAC %s but prevResult says %s", ifName, att.MacAddress, want)
	}
	for _, a := range []string{att.Address, att.Address6} {
		if a == "" {
			continue
		}
		if err := checkAddress(res, idx, ifName, a); err != nil {
			return err
		}
	}
	return nil
}

// checkAddress finds address a (with its length) among the addresses prevResult gives
// interface idx.
func checkAddress(res *current.Result, idx int, ifName, a string) error {
	addr, err := parseAddress(a)
	if err != nil {
		return types.NewError(types.ErrInternal, err.Error(), "")
	}
	var reported []string
	for _, ipc := range res.IPs {
		if ipc.Interface == nil || *ipc.Interface != idx {
			continue
		}
		if ipc.Address.IP.Equal(addr.IP) && samePrefixLen(ipc.Address.Mask, addr.Mask) {
			return nil
		}
		reported = append(reported, ipc.Address.String())
	}
	return mismatch("interface %s has address %s but prevResult says [%s]", ifName, a, strings.Join(reported, ", "))
}

func mismatch(format string, a ...any) error {
	return types.NewError(types.ErrInternal, "cnet: CHECK: "+fmt.Sprintf(format, a...), "")
}

func sameMAC(a, b string) bool {
	ma, errA := net.ParseMAC(a)
	mb, errB := net.ParseMAC(b)
	if errA != nil || errB != nil {
		return strings.EqualFold(a, b)
	}
	return ma.String() == mb.String()
}

// samePrefixLen compares masks by prefix length and address width: both sides come from
// "a.b.c.d/len" text, so their masks are canonical.
func samePrefixLen(a, b net.IPMask) bool {
	la, ba := a.Size()
	lb, bb := b.Size()
	return la == lb && ba == bb
}
