// Package cniplugin is the cnet binary run as a CNI plugin: when a runtime (Podman,
// containerd, CRI-O, cnitool) executes it with CNI_COMMAND set, it asks the cnet daemon to put
// the runtime's network namespace on a cnet network and reports the result in CNI's format.
//
// The plugin holds no state and touches no kernel object itself: the daemon's controller
// orders every step (records before kernel, rollback, recovery at start), exactly as for its
// own containers, so a CNI attachment gets the same crash safety, DNS names and published
// ports. The plugin only translates between the CNI protocol and the API in internal/api
// (cni.go).
package cniplugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/cnet-dev/cnet/internal/api"
)

// callTimeout bounds every daemon call. Runtimes run plugins synchronously while a container
// starts or stops, so a hung daemon must turn into an error (code 11, try again) rather than a
// hung runtime.
const callTimeout = 30 * time.Second

// about is printed by skel when the binary is run without CNI_COMMAND (which main never does:
// it dispatches here only when CNI_COMMAND is set).
const about = "cnet CNI plugin: attaches containers to cnet networks through the cnet daemon"

// SupportedVersions are the CNI spec versions the plugin speaks: 0.4.0 (the oldest with
// CHECK, still what many Podman 3 / CNI-era configurations say), 1.0.0, and 1.1.0 (STATUS, GC).
func SupportedVersions() version.PluginInfo {
	return version.PluginSupports("0.4.0", "1.0.0", "1.1.0")
}

// Main runs one CNI command from the environment and stdin and exits: 0 on success, 1 with
// the error as CNI error JSON on stdout otherwise (skel's contract). It never returns.
func Main() {
	skel.PluginMainFuncs((&plugin{out: os.Stdout}).funcs(), SupportedVersions(), about)
	os.Exit(0)
}

// funcs are the commands as skel dispatches them.
func (p *plugin) funcs() skel.CNIFuncs {
	return skel.CNIFuncs{Add: p.add, Del: p.del, Check: p.check, Status: p.status, GC: p.gc}
}

// plugin carries where results are written, so that tests can read them.
type plugin struct {
	out io.Writer
}

// session is what every command starts with: the parsed configuration and a client for the
// daemon it names.
func session(stdin []byte) (*NetConf, *api.Client, error) {
	conf, err := parseConfig(stdin)
	if err != nil {
		return nil, nil, err
	}
	c, err := api.NewClient(conf.Host)
	if err != nil {
		return nil, nil, types.NewError(types.ErrInvalidNetworkConfig, "cnet: host: "+err.Error(), "")
	}
	return conf, c, nil
}

// add is ADD: the daemon makes the interface in CNI_NETNS and returns what it made.
func (p *plugin) add(args *skel.CmdArgs) error {
	conf, c, err := session(args.StdinData)
	if err != nil {
		return err
	}
	cargs, err := parseArgs(args.Args)
	if err != nil {
		return err
	}
	req, err := attachRequest(conf, cargs, args.ContainerID, args.Netns, args.IfName)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	att, err := c.CNIAdd(ctx, req)
	if err != nil {
		return daemonError("ADD", conf.Host, err)
	}
	if att.IfName == "" {
		att.IfName = args.IfName
	}
	res, err := buildResult(att, args.Netns, conf.PrevResult)
	if err != nil {
		// The attachment exists but cannot be reported; undo it rather than leave an
		// interface the runtime does not know about (a runtime need not call DEL after a
		// failed ADD).
		undo(c, conf, args)
		return types.NewError(types.ErrInternal, err.Error(), "")
	}
	return printResult(p.out, res, conf.CNIVersion)
}

// undo is ADD's best-effort rollback; its own failure is not reported, the ADD's is.
func undo(c *api.Client, conf *NetConf, args *skel.CmdArgs) {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	_ = c.CNIDel(ctx, api.CNIDetachRequest{ContainerID: args.ContainerID, IfName: args.IfName, Network: conf.Network})
}

// del is DEL. The spec wants DEL to succeed for what is already gone (runtimes call it again
// after failures and during cleanup), so the daemon's 404 is success. A daemon that is down
// (nothing listens on its socket) gets the DEL as a pending request that it completes when it
// next starts (see api.CNIPendingDir): the runtime may forget the container, and its address
// and ports are freed as soon as cnet runs again. A daemon that is up but fails or does not
// answer is an error (code 11 when retrying may help): success then would let the runtime
// forget an attachment that nobody will remove.
func (p *plugin) del(args *skel.CmdArgs) error {
	conf, c, err := session(args.StdinData)
	if err != nil {
		return err
	}
	req := api.CNIDetachRequest{ContainerID: args.ContainerID, IfName: args.IfName, Network: conf.Network}
	call := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		defer cancel()
		if err := c.CNIDel(ctx, req); err != nil && !isNotFound(err) {
			return err
		}
		return nil
	}
	if err := deferIfDown(c, api.CNIPending{Del: &req}, call); err != nil {
		return daemonError("DEL", conf.Host, err)
	}
	return nil
}

// deferIfDown makes call, and when the daemon is down leaves p pending for its next start. The
// daemon reads pending requests after it listens and before it serves, so one more try after
// the request is written closes the race with a daemon starting meanwhile: either that try
// reaches it (and the file is removed here; doing the request twice would be harmless) or the
// daemon began listening after the file was there and will read it.
func deferIfDown(c *api.Client, p api.CNIPending, call func() error) error {
	err := call()
	if err == nil || !isDown(err) {
		return err
	}
	path, werr := api.WriteCNIPending(api.CNIPendingDir(c.SocketPath()), p)
	if werr != nil {
		return errors.Join(err, werr)
	}
	err = call()
	switch {
	case err == nil:
		return os.Remove(path)
	case isDown(err):
		return nil
	default:
		// Up after all, and failing: the runtime retries, the file would only repeat it.
		_ = os.Remove(path)
		return err
	}
}

// check is CHECK: the daemon confirms the attachment and its interface exist, and the
// runtime's prevResult must still describe them.
func (p *plugin) check(args *skel.CmdArgs) error {
	conf, c, err := session(args.StdinData)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	att, err := c.CNICheck(ctx, api.CNIDetachRequest{ContainerID: args.ContainerID, IfName: args.IfName, Network: conf.Network})
	if err != nil {
		return daemonError("CHECK", conf.Host, err)
	}
	if conf.PrevResult == nil {
		return nil
	}
	return checkAgainst(conf.PrevResult, att, args.IfName, args.Netns)
}

// status is STATUS (CNI 1.1.0): ready when the daemon answers and the configured network
// exists, so that a runtime does not schedule containers onto a configuration that cannot
// work. The daemon's API has no ping in its client, so inspecting the network answers both
// questions in one call.
func (p *plugin) status(args *skel.CmdArgs) error {
	conf, c, err := session(args.StdinData)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	if _, err := c.NetworkInspect(ctx, conf.Network); err != nil {
		var msg string
		switch {
		case isNotFound(err):
			msg = fmt.Sprintf("cnet: network %q does not exist on the cnet daemon at %s: create it with `cnet network create %s`",
				conf.Network, conf.Host, conf.Network)
		default:
			// Reuse ADD's wording (unreachable daemon, timeout), under STATUS's code.
			msg = daemonError("STATUS", conf.Host, err).Msg
		}
		return types.NewError(errPluginNotAvailable, msg, "")
	}
	return nil
}

// gc is GC (CNI 1.1.0): the daemon removes every attachment on the network that the runtime
// does not list in cni.dev/valid-attachments (or the legacy cni.dev/attachments); with the
// daemon down it is left pending, as DEL is. A
// configuration with neither key says nothing about what is valid (cnitool's gc sends none):
// nothing is removed then, rather than everything.
func (p *plugin) gc(args *skel.CmdArgs) error {
	conf, c, err := session(args.StdinData)
	if err != nil {
		return err
	}
	var keys struct {
		Valid  *[]validAttachment `json:"cni.dev/valid-attachments"`
		Legacy *[]validAttachment `json:"cni.dev/attachments"`
	}
	if err := json.Unmarshal(args.StdinData, &keys); err != nil {
		return types.NewError(types.ErrDecodingFailure, "cnet: reading the GC configuration: "+err.Error(), "")
	}
	list := keys.Valid
	if list == nil {
		list = keys.Legacy
	}
	if list == nil {
		return nil
	}
	req := api.CNIGCRequest{Network: conf.Network}
	for _, v := range *list {
		req.Valid = append(req.Valid, api.CNIDetachRequest{ContainerID: v.ContainerID, IfName: v.IfName})
	}
	call := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		defer cancel()
		_, err := c.CNIGC(ctx, req)
		return err
	}
	if err := deferIfDown(c, api.CNIPending{GC: &req}, call); err != nil {
		return daemonError("GC", conf.Host, err)
	}
	return nil
}

// validAttachment is one entry of cni.dev/valid-attachments.
type validAttachment struct {
	ContainerID string `json:"containerID"`
	IfName      string `json:"ifname"`
}
