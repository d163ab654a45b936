package daemon

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"github.com/cnet-dev/cnet/internal/api"
	"github.com/cnet-dev/cnet/internal/controller"
	"github.com/cnet-dev/cnet/internal/errdefs"
	"github.com/cnet-dev/cnet/internal/faults"
	"github.com/cnet-dev/cnet/internal/store"
)

// CNI attachments: namespaces that another runtime made (Podman, containerd, cnitool) put on
// cnet networks by cnet's CNI plugin. Each runtime container is one cnet sandbox that adopts
// the runtime's namespace (controller.SandboxConfig.NetNS) and whose ID is derived from the
// runtime's container ID: runtimes' IDs need not be 64 hex characters (ctr's are short, and
// cnitool's share their first 12). Each CNI_IFNAME is one endpoint of that sandbox. The
// attachments are recorded (store.CNI) so that a restarted daemon keeps the ones whose
// namespace still exists, as it keeps running containers.

// cniRecord is one attachment as recorded.
type cniRecord struct {
	SandboxID   string
	ContainerID string // the runtime's
	IfName      string
	Netns       string // the runtime's name for the namespace when it was added
	Network     string
	Name        string
	Aliases     []string `json:",omitempty"`
	IP          string   `json:",omitempty"`
	IP6         string   `json:",omitempty"`
	MAC         string   `json:",omitempty"`
	// Ports are published for the runtime container (the portMappings capability); only the
	// sandbox's first attachment carries them, as a container's ports go with its first
	// network.
	Ports []controller.PortMapping `json:",omitempty"`
}

func cniSandboxID(containerID string) string {
	sum := sha256.Sum256([]byte("cni\x00" + containerID))
	return hex.EncodeToString(sum[:])
}

func cniKey(sandboxID, ifName string) string { return sandboxID + "/" + ifName }

// cniRecords lists the recorded attachments of one sandbox, or of all when sandboxID is "".
func (d *Daemon) cniRecords(sandboxID string) ([]cniRecord, error) {
	var out []cniRecord
	err := store.Load(d.store, store.CNI, func(key string, r *cniRecord) error {
		if sandboxID == "" || strings.HasPrefix(key, sandboxID+"/") {
			out = append(out, *r)
		}
		return nil
	})
	return out, err
}

// cniSandboxConfig is the sandbox of a runtime container: its namespace adopted, no files
// (the runtime writes them), its attachments' networks.
func cniSandboxConfig(recs []cniRecord) controller.SandboxConfig {
	first := recs[0]
	name := first.Name
	if name == "" {
		name = first.ContainerID
	}
	cfg := controller.SandboxConfig{ContainerID: first.SandboxID, ContainerName: name, Hostname: first.Name, NetNS: first.Netns, Ports: first.Ports}
	for _, r := range recs {
		cfg.Networks = append(cfg.Networks, controller.Attachment{Network: r.Network, Options: r.joinOptions()})
	}
	return cfg
}

func (r cniRecord) joinOptions() controller.JoinOptions {
	name := r.Name
	if name == "" {
		name = r.ContainerID
	}
	return controller.JoinOptions{ContainerName: name, Aliases: r.Aliases, IP: r.IP, IP6: r.IP6, IfName: r.IfName, MAC: r.MAC}
}

// CNIAdd implements api.Backend: the plugin's ADD.
func (d *Daemon) CNIAdd(_ context.Context, req api.CNIAttachRequest) (api.CNIAttachment, error) {
	for what, v := range map[string]string{"CNI_CONTAINERID": req.ContainerID, "CNI_NETNS": req.Netns, "CNI_IFNAME": req.IfName, "the network": req.Network} {
		if v == "" {
			return api.CNIAttachment{}, errdefs.Invalid("a CNI ADD needs %s", what)
		}
	}
	ports, err := cniPorts(req.PortMappings)
	if err != nil {
		return api.CNIAttachment{}, err
	}
	if _, err := d.ctrl.Network(req.Network); err != nil {
		return api.CNIAttachment{}, err
	}
	d.cniMu.Lock()
	defer d.cniMu.Unlock()
	id := cniSandboxID(req.ContainerID)
	recs, err := d.cniRecords(id)
	if err != nil {
		return api.CNIAttachment{}, err
	}
	for _, r := range recs {
		if r.IfName == req.IfName {
			return api.CNIAttachment{}, errdefs.Conflict("container %s already has an interface %s from cnet (network %s)", req.ContainerID, req.IfName, r.Network)
		}
	}
	if len(recs) > 0 && len(ports) > 0 {
		return api.CNIAttachment{}, errdefs.Invalid("container %s is already on a cnet network: its ports are published with its first attachment", req.ContainerID)
	}
	rec := cniRecord{SandboxID: id, ContainerID: req.ContainerID, IfName: req.IfName, Netns: req.Netns, Network: req.Network,
		Name: req.Name, Aliases: req.Aliases, IP: req.IP, IP6: req.IP6, MAC: req.MAC, Ports: ports}
	// Recorded first: a daemon that dies now finds the record at its next start and keeps
	// or drops the attachment with its namespace.
	if err := d.store.Put(store.CNI, cniKey(id, req.IfName), rec); err != nil {
		return api.CNIAttachment{}, err
	}
	faults.Point("cni-recorded")
	if len(recs) == 0 {
		_, err = d.ctrl.StartSandbox(cniSandboxConfig([]cniRecord{rec}))
	} else {
		err = d.ctrl.Connect(id, req.Network, rec.joinOptions())
	}
	if err != nil {
		if derr := d.store.Delete(store.CNI, cniKey(id, req.IfName)); derr != nil {
			slog.Error("rolling back the record of a CNI attachment", "container", req.ContainerID, "err", derr)
		}
		return api.CNIAttachment{}, err
	}
	return d.cniAttachment(rec)
}

// cniPorts turns the portMappings capability into cnet's published ports.
func cniPorts(in []api.CNIPortMapping) ([]controller.PortMapping, error) {
	var out []controller.PortMapping
	for _, p := range in {
		if p.HostPort < 1 || p.HostPort > 65535 || p.ContainerPort < 1 || p.ContainerPort > 65535 {
			return nil, errdefs.Invalid("invalid port mapping %d:%d: ports are 1-65535", p.HostPort, p.ContainerPort)
		}
		proto := strings.ToLower(p.Protocol)
		switch proto {
		case "":
			proto = "tcp"
		case "tcp", "udp", "sctp":
		default:
			return nil, errdefs.Invalid("invalid port mapping protocol %q: tcp, udp or sctp", p.Protocol)
		}
		m := controller.PortMapping{HostPort: uint16(p.HostPort), ContainerPort: uint16(p.ContainerPort), Proto: proto}
		if p.HostIP != "" {
			a, err := netip.ParseAddr(p.HostIP)
			if err != nil || a.Zone() != "" {
				return nil, errdefs.Invalid("invalid port mapping host address %q: want an IP address", p.HostIP)
			}
			m.HostIP = a.Unmap()
		}
		out = append(out, m)
	}
	return out, nil
}

// cniAttachment describes a recorded attachment from its endpoint.
func (d *Daemon) cniAttachment(r cniRecord) (api.CNIAttachment, error) {
	for _, ep := range d.ctrl.SandboxEndpoints(r.SandboxID) {
		if ep.IfName != r.IfName {
			continue
		}
		out := api.CNIAttachment{ContainerID: r.ContainerID, IfName: r.IfName, Netns: r.Netns, Network: r.Network,
			MacAddress: ep.MAC, Address: prefixString(ep.Address), Gateway: addrString(ep.Gateway),
			Address6: prefixString(ep.Address6), Gateway6: addrString(ep.Gateway6)}
		if d.ctrl.NamesResolve(ep.NetworkID) {
			out.DNS = []string{"127.0.0.11"}
		}
		return out, nil
	}
	return api.CNIAttachment{}, errdefs.NotFound("container %s has no interface %s from cnet", r.ContainerID, r.IfName)
}

// CNIGC implements api.Backend: the plugin's GC. Every attachment on the network (by the name
// or ID the runtime's configuration gives) that the runtime does not list as valid is removed
// as a DEL would.
func (d *Daemon) CNIGC(ctx context.Context, req api.CNIGCRequest) (int, error) {
	n, err := d.ctrl.Network(req.Network)
	if err != nil {
		return 0, err
	}
	valid := map[string]bool{}
	for _, v := range req.Valid {
		valid[cniKey(cniSandboxID(v.ContainerID), v.IfName)] = true
	}
	recs, err := d.cniRecords("")
	if err != nil {
		return 0, err
	}
	removed := 0
	for _, r := range recs {
		if valid[cniKey(r.SandboxID, r.IfName)] {
			continue
		}
		if rn, err := d.ctrl.Network(r.Network); err != nil || rn.ID != n.ID {
			continue
		}
		if err := d.CNIDel(ctx, api.CNIDetachRequest{ContainerID: r.ContainerID, IfName: r.IfName, Network: r.Network}); err != nil {
			return removed, err
		}
		removed++
	}
	return removed, nil
}

// CNIDel implements api.Backend: the plugin's DEL. An attachment already gone is not an error,
// and neither is a namespace the runtime already deleted: the sandbox holds its own name for it.
func (d *Daemon) CNIDel(_ context.Context, req api.CNIDetachRequest) error {
	d.cniMu.Lock()
	defer d.cniMu.Unlock()
	id := cniSandboxID(req.ContainerID)
	recs, err := d.cniRecords(id)
	if err != nil {
		return err
	}
	var rec *cniRecord
	for i := range recs {
		if recs[i].IfName == req.IfName {
			rec = &recs[i]
		}
	}
	if rec == nil {
		return nil
	}
	if len(recs) == 1 {
		err = d.ctrl.StopSandbox(id)
	} else {
		err = d.ctrl.Disconnect(id, rec.Network, true)
	}
	if err != nil {
		return err
	}
	faults.Point("cni-released")
	return d.store.Delete(store.CNI, cniKey(id, req.IfName))
}

// CNICheck implements api.Backend: the plugin's CHECK.
func (d *Daemon) CNICheck(_ context.Context, req api.CNIDetachRequest) (api.CNIAttachment, error) {
	recs, err := d.cniRecords(cniSandboxID(req.ContainerID))
	if err != nil {
		return api.CNIAttachment{}, err
	}
	for _, r := range recs {
		if r.IfName == req.IfName {
			return d.cniAttachment(r)
		}
	}
	return api.CNIAttachment{}, errdefs.NotFound("container %s has no interface %s from cnet", req.ContainerID, req.IfName)
}

// liveCNISandboxes adds to live the CNI sandboxes whose runtime still names their namespace,
// and drops the records of the others: their runtime container went while the daemon was
// away (recovery removes their endpoints, frees their addresses and lets go of cnet's bind of
// the namespace).
func (d *Daemon) liveCNISandboxes(live map[string]controller.SandboxConfig) {
	alive, gone, err := d.cniSandboxesByLife()
	if err != nil {
		slog.Error("loading CNI attachments", "err", err)
		return
	}
	for id, rs := range alive {
		live[id] = cniSandboxConfig(rs)
	}
	for _, rs := range gone {
		d.dropCNIRecords(rs)
	}
}

// cniSandboxesByLife sorts the recorded CNI sandboxes into those whose runtime still names
// their namespace (CNI_NETNS still is the namespace cnet holds) and those it let go of: the
// runtime unmounted its /run/netns file, or the process of a /proc/PID/ns/net exited.
func (d *Daemon) cniSandboxesByLife() (alive, gone map[string][]cniRecord, err error) {
	recs, err := d.cniRecords("")
	if err != nil {
		return nil, nil, err
	}
	alive, gone = map[string][]cniRecord{}, map[string][]cniRecord{}
	for _, r := range recs {
		if d.ctrl.SandboxExists(r.SandboxID) && d.ctrl.SandboxIs(r.SandboxID, r.Netns) {
			alive[r.SandboxID] = append(alive[r.SandboxID], r)
		} else {
			gone[r.SandboxID] = append(gone[r.SandboxID], r)
		}
	}
	return alive, gone, nil
}

func (d *Daemon) dropCNIRecords(rs []cniRecord) {
	for _, r := range rs {
		if err := d.store.Delete(store.CNI, cniKey(r.SandboxID, r.IfName)); err != nil {
			slog.Error("dropping the record of a gone CNI attachment", "container", r.ContainerID, "err", err)
		}
	}
}

// cniReapInterval is how often the daemon looks for runtime containers that went without a
// DEL. A look is one stat per attachment.
const cniReapInterval = 2 * time.Second

// reapCNI removes the attachments whose runtime let go of their namespace without a DEL, as a
// DEL would. containerd 1.6's `ctr run -d --cni` never sends one, and any runtime that crashes
// may not: without this, cnet's bind of the namespace would keep it, its interface and its
// address for ever. A DEL that comes later finds nothing and succeeds.
func (d *Daemon) reapCNI() {
	d.cniMu.Lock()
	defer d.cniMu.Unlock()
	_, gone, err := d.cniSandboxesByLife()
	if err != nil {
		slog.Error("loading CNI attachments", "err", err)
		return
	}
	for id, rs := range gone {
		if d.ctrl.SandboxExists(id) {
			if err := d.ctrl.StopSandbox(id); err != nil {
				slog.Error("removing a CNI attachment whose runtime let its namespace go", "container", rs[0].ContainerID, "err", err)
				continue
			}
		}
		slog.Info("removed a CNI attachment whose runtime let its namespace go without a DEL", "container", rs[0].ContainerID, "netns", rs[0].Netns)
		d.dropCNIRecords(rs)
	}
}

// runCNIReaper calls reapCNI every cniReapInterval until stop is closed.
func (d *Daemon) runCNIReaper(stop <-chan struct{}) {
	t := time.NewTicker(cniReapInterval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			d.reapCNI()
		}
	}
}

// cniSandboxes maps each CNI sandbox to its first attachment's record (the runtime's container
// ID and name), for listings.
func (d *Daemon) cniSandboxes() map[string]cniRecord {
	recs, err := d.cniRecords("")
	if err != nil {
		slog.Error("loading CNI attachments", "err", err)
		return nil
	}
	out := make(map[string]cniRecord, len(recs))
	for _, r := range recs {
		if _, ok := out[r.SandboxID]; !ok {
			out[r.SandboxID] = r
		}
	}
	return out
}
