package daemon

import (
	"fmt"
	"net/netip"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/cnet-dev/cnet/internal/api"
	"github.com/cnet-dev/cnet/internal/controller"
	"github.com/cnet-dev/cnet/internal/errdefs"
)

// link is a legacy --link as recorded: the target by ID (names can be reused after a removal),
// and the names the linking container knows it by.
type link struct {
	TargetID   string
	TargetName string
	Alias      string
	// Network is the user network a `network connect --link` was made on; empty for `run
	// --link`. Only `run --link` on the default bridge is a legacy link that needs its target
	// running (/etc/hosts line, environment); the others are names for the resolver, as in
	// Docker, and resolve once the target runs.
	Network string
}

// parseLinks resolves --link NAME[:ALIAS] values at create time, as Docker does, and returns
// them with Docker's normalised form for inspect ("/target:/self/alias").
func (d *Daemon) parseLinks(self string, values []string) ([]link, []string, error) {
	var links []link
	var normalised []string
	for _, v := range values {
		name, alias, _ := strings.Cut(v, ":")
		name = strings.TrimPrefix(name, "/")
		if alias == "" {
			alias = name
		}
		if name == "" || strings.ContainsAny(alias, " \t/") {
			return nil, nil, errdefs.Invalid("invalid link %q: want NAME or NAME:ALIAS", v)
		}
		target, err := d.lookup(name)
		if err != nil {
			return nil, nil, errdefs.Invalid("could not get container for %s: %w", name, err)
		}
		tv := target.view()
		l := link{TargetID: tv.ID, TargetName: tv.Name, Alias: alias}
		links = append(links, l)
		normalised = append(normalised, fmt.Sprintf("/%s:/%s/%s", l.TargetName, self, alias))
	}
	return links, normalised, nil
}

// parseConnectLinks resolves the links of `network connect --link` for c, which the caller
// holds locked. Docker refuses a link to the container itself.
func (d *Daemon) parseConnectLinks(c *ctr, network string, values []string) ([]link, error) {
	for _, v := range values {
		name, _, _ := strings.Cut(v, ":")
		if t, err := d.lookup(strings.TrimPrefix(name, "/")); err == nil && t == c {
			return nil, errdefs.Invalid("invalid link %q: a container cannot link to itself", v)
		}
	}
	links, _, err := d.parseLinks(c.rec.Name, values)
	for i := range links {
		links[i].Network = network
	}
	return links, err
}

// linkNames maps link aliases to their targets' names, for the resolver.
func linkNames(links []link) map[string]string {
	out := make(map[string]string, len(links))
	for _, l := range links {
		out[l.Alias] = l.TargetName
	}
	return out
}

// parseExtraHosts validates --add-host HOST:IP values.
func parseExtraHosts(values []string) ([]controller.HostEntry, error) {
	var out []controller.HostEntry
	for _, v := range values {
		host, ip, ok := strings.Cut(v, ":")
		addr, err := netip.ParseAddr(ip)
		if !ok || host == "" || err != nil {
			return nil, errdefs.Invalid("invalid --add-host %q: want HOST:IP, e.g. db:10.0.0.5", v)
		}
		out = append(out, controller.HostEntry{IP: addr, Names: []string{host}})
	}
	return out, nil
}

var exposedPort = regexp.MustCompile(`^([0-9]{1,5})/(tcp|udp|sctp)$`)

// validateExposed checks --expose values ("80/tcp").
func validateExposed(ports map[string]struct{}) error {
	for p := range ports {
		m := exposedPort.FindStringSubmatch(p)
		if m == nil {
			return errdefs.Invalid("invalid exposed port %q: want PORT[/tcp|udp|sctp] or a range START-END", p)
		}
		if n, _ := strconv.Atoi(m[1]); n < 1 || n > 65535 {
			return errdefs.Invalid("invalid exposed port %q: ports are 1 to 65535", p)
		}
	}
	return nil
}

// linkAddress is a link target's address on the default bridge, where legacy links live.
func (d *Daemon) linkAddress(targetID string) (netip.Addr, bool) {
	for _, ep := range d.ctrl.SandboxEndpoints(targetID) {
		if n, err := d.ctrl.Network(ep.NetworkID); err == nil && n.Name == "bridge" {
			return ep.Address.Addr(), true
		}
	}
	return netip.Addr{}, false
}

// linkHostEntries are the /etc/hosts lines of a container's links: "IP alias id12 name" as in
// the seed ("172.17.0.2  nasa1515 7881267cb8e1 web-nasa").
func (d *Daemon) linkHostEntries(links []link) []controller.HostEntry {
	var out []controller.HostEntry
	for _, l := range links {
		ip, ok := d.linkAddress(l.TargetID)
		if !ok {
			continue
		}
		names := []string{l.Alias, l.TargetID[:12]}
		if l.Alias != l.TargetName {
			names = append(names, l.TargetName)
		}
		out = append(out, controller.HostEntry{IP: ip, Names: names})
	}
	return out
}

// checkLinkTargets refuses to start a container on the default bridge whose legacy link
// targets are not running (Docker's check; links on user networks are resolver names only).
func (d *Daemon) checkLinkTargets(c *ctr) error {
	if c.rec.networkMode() != "bridge" {
		return nil
	}
	self := c.rec.Name
	for _, l := range c.rec.Links {
		if l.Network != "" {
			continue
		}
		running := false
		if t, err := d.lookup(l.TargetID); err == nil {
			running = t.view().Running
		}
		if !running {
			return errdefs.Conflict("Cannot link to a non running container: /%s AS /%s/%s", l.TargetName, self, l.Alias)
		}
	}
	return nil
}

var nonAlnum = regexp.MustCompile(`[^A-Za-z0-9]`)

// linkEnv is Docker's environment for links: ALIAS_NAME, ALIAS_PORT*, ALIAS_ENV_*.
func linkEnv(self string, l link, ip netip.Addr, exposed map[string]struct{}, targetEnv []string) []string {
	prefix := strings.ToUpper(nonAlnum.ReplaceAllString(l.Alias, "_"))
	env := []string{fmt.Sprintf("%s_NAME=/%s/%s", prefix, self, l.Alias)}
	type port struct {
		n     int
		proto string
	}
	var ports []port
	for p := range exposed {
		if m := exposedPort.FindStringSubmatch(p); m != nil {
			n, _ := strconv.Atoi(m[1])
			ports = append(ports, port{n, m[2]})
		}
	}
	sort.Slice(ports, func(i, j int) bool {
		if ports[i].n != ports[j].n {
			return ports[i].n < ports[j].n
		}
		return ports[i].proto < ports[j].proto
	})
	if len(ports) > 0 {
		env = append(env, fmt.Sprintf("%s_PORT=%s://%s:%d", prefix, ports[0].proto, ip, ports[0].n))
	}
	for _, p := range ports {
		key := fmt.Sprintf("%s_PORT_%d_%s", prefix, p.n, strings.ToUpper(p.proto))
		env = append(env,
			fmt.Sprintf("%s=%s://%s:%d", key, p.proto, ip, p.n),
			fmt.Sprintf("%s_ADDR=%s", key, ip),
			fmt.Sprintf("%s_PORT=%d", key, p.n),
			fmt.Sprintf("%s_PROTO=%s", key, p.proto))
	}
	for _, kv := range targetEnv {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "HOME" || k == "PATH" {
			continue
		}
		env = append(env, fmt.Sprintf("%s_ENV_%s=%s", prefix, k, v))
	}
	return env
}

// linkEnvFor builds the link environment of c from its targets' current state.
func (d *Daemon) linkEnvFor(c *ctr) []string {
	var env []string
	for _, l := range c.rec.Links {
		ip, ok := d.linkAddress(l.TargetID)
		if !ok {
			continue
		}
		target, err := d.lookup(l.TargetID)
		if err != nil {
			continue
		}
		tv := target.view()
		env = append(env, linkEnv(c.rec.Name, l, ip, tv.ExposedPorts, tv.Env)...)
	}
	return env
}

// extraHosts are c's /etc/hosts lines before its own: --add-host, then (on the default
// bridge) its legacy links, as Docker orders them.
func (d *Daemon) extraHosts(c *ctr) []controller.HostEntry {
	entries, _ := parseExtraHosts(c.rec.HostConfig.ExtraHosts)
	if c.rec.networkMode() == "bridge" {
		entries = append(entries, d.linkHostEntries(c.rec.Links)...)
	}
	return entries
}

// refreshLinkers rewrites /etc/hosts of running containers that link to targetID, after the
// target started again with perhaps another address. The caller holds no container lock.
func (d *Daemon) refreshLinkers(targetID string) {
	d.mu.Lock()
	var linkers []*ctr
	for _, c := range d.containers {
		linkers = append(linkers, c)
	}
	d.mu.Unlock()
	for _, c := range linkers {
		c.mu.Lock()
		for _, l := range c.rec.Links {
			if l.TargetID == targetID && c.rec.State.Running && c.rec.ownsSandbox() {
				_ = d.ctrl.SetExtraHosts(c.rec.ID, d.extraHosts(c))
				break
			}
		}
		c.mu.Unlock()
	}
}

// hostConfigDNS validates --dns values.
func validateDNS(hc api.HostConfig) error {
	for _, s := range hc.DNS {
		if _, err := netip.ParseAddr(s); err != nil {
			return errdefs.Invalid("invalid --dns %q: want an IP address", s)
		}
	}
	return nil
}
