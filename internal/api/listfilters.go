package api

import (
	"path"
	"regexp"
	"strconv"
	"strings"

	"github.com/cnet-dev/cnet/internal/errdefs"
)

// MatchRegexp is Docker's Match for name-like keys: a value matches when one of the key's
// values, as a regular expression, finds it (so a plain word matches as a substring). An
// absent key matches everything.
func (f Filters) MatchRegexp(key, value string) bool {
	vs, ok := f[key]
	if !ok {
		return true
	}
	for _, v := range vs {
		if re, err := regexp.Compile(v); err == nil && re.MatchString(value) {
			return true
		} else if err != nil && strings.Contains(value, v) {
			return true
		}
	}
	return false
}

// builtinNetworks are the networks the daemon makes itself (network ls's type=builtin).
func builtinNetwork(name string) bool { return name == "bridge" || name == "host" || name == "none" }

// FilterNetworks applies GET /networks's filters as Docker does: name (a regular expression),
// id (a prefix), driver, scope, label/label!, type=custom|builtin, dangling (a user network
// with no container; containers counts them, and is needed only for that key).
func FilterNetworks(f Filters, nets []Network, containers func(Network) (int, bool)) ([]Network, error) {
	if err := f.Only("name", "id", "driver", "scope", "label", "label!", "type", "dangling"); err != nil {
		return nil, err
	}
	for _, t := range f["type"] {
		if t != "custom" && t != "builtin" {
			return nil, errdefs.Invalid("invalid filter: 'type'='%s'", t)
		}
	}
	dangling, byDangling, err := f.Bool("dangling")
	if err != nil {
		return nil, err
	}
	out := []Network{}
	for _, n := range nets {
		kind := "custom"
		if builtinNetwork(n.Name) {
			kind = "builtin"
		}
		if !f.MatchRegexp("name", n.Name) || !f.Match("id", n.ID, true) || !f.Match("driver", n.Driver, false) ||
			!f.Match("scope", n.Scope, false) || !f.MatchLabels(n.Labels) || !f.Match("type", kind, false) {
			continue
		}
		if byDangling {
			count, ok := containers(n)
			if !ok {
				continue // removed meanwhile
			}
			if (kind == "custom" && count == 0) != dangling {
				continue
			}
		}
		out = append(out, n)
	}
	return out, nil
}

// containerStatuses are the values of the status filter, Docker's states.
var containerStatuses = map[string]bool{"created": true, "restarting": true, "running": true, "removing": true,
	"paused": true, "exited": true, "dead": true}

// filterContainers applies GET /containers/json's filters as Docker does: name (a regular
// expression on the name without "/"), id (a prefix), label/label!, network (a name or ID the
// container is on), status, ancestor (the image by name, name without tag, or ID prefix),
// exited (an exit code, of stopped containers), publish and expose ("80" or "80/tcp").
func filterContainers(f Filters, list []ContainerSummary) ([]ContainerSummary, error) {
	if err := f.Only("name", "id", "label", "label!", "network", "status", "ancestor", "exited", "publish", "expose"); err != nil {
		return nil, err
	}
	for _, s := range f["status"] {
		if !containerStatuses[s] {
			return nil, errdefs.Invalid("invalid filter 'status=%s'", s)
		}
	}
	codes := map[int]bool{}
	for _, e := range f["exited"] {
		n, err := strconv.Atoi(e)
		if err != nil {
			return nil, errdefs.Invalid("invalid filter 'exited=%s'", e)
		}
		codes[n] = true
	}
	// publish matches a published (host) port, expose a container port; a container that
	// either key matches stays, as in Docker.
	ports := func(key string, ps []Port) bool {
		for _, v := range f[key] {
			num, proto, _ := strings.Cut(v, "/")
			if proto == "" {
				proto = "tcp"
			}
			for _, p := range ps {
				port := p.PrivatePort
				if key == "publish" {
					port = p.PublicPort
				}
				if port != 0 && strconv.Itoa(int(port)) == num && p.Type == proto {
					return true
				}
			}
		}
		return false
	}
	byPort := f.Has("publish") || f.Has("expose")
	out := []ContainerSummary{}
	for _, c := range list {
		name := ""
		if len(c.Names) > 0 {
			name = strings.TrimPrefix(c.Names[0], "/")
		}
		onNetwork := !f.Has("network")
		if c.NetworkSettings != nil {
			for netName, ep := range c.NetworkSettings.Networks {
				onNetwork = onNetwork || f.Match("network", netName, false) || (ep != nil && ep.NetworkID != "" && f.Match("network", ep.NetworkID, true))
			}
		}
		ancestor := f.Match("ancestor", c.Image, false) || f.Match("ancestor", stripTag(c.Image), false) ||
			(c.ImageID != "" && (f.Match("ancestor", c.ImageID, true) || f.Match("ancestor", strings.TrimPrefix(c.ImageID, "sha256:"), true)))
		if !f.MatchRegexp("name", name) || !f.Match("id", c.ID, true) || !f.MatchLabels(c.Labels) || !onNetwork ||
			!f.Match("status", c.State, false) || !ancestor || (byPort && !ports("publish", c.Ports) && !ports("expose", c.Ports)) {
			continue
		}
		if len(codes) > 0 && (c.State != "exited" || !codes[exitCodeOf(c.Status)]) {
			continue
		}
		out = append(out, c)
	}
	return out, nil
}

// exitCodeOf reads the code of a status line "Exited (3) 2 minutes ago" (-1 if none).
func exitCodeOf(status string) int {
	rest, ok := strings.CutPrefix(status, "Exited (")
	if !ok {
		return -1
	}
	code, _, _ := strings.Cut(rest, ")")
	n, err := strconv.Atoi(code)
	if err != nil {
		return -1
	}
	return n
}

// Has says whether key was given.
func (f Filters) Has(key string) bool { _, ok := f[key]; return ok }

// FilterImages applies GET /images/json's filters as Docker does: dangling (no reference),
// reference (a glob on "name" or "name:tag"; an image stays if any of its references
// matches), label/label!.
func FilterImages(f Filters, list []ImageSummary) ([]ImageSummary, error) {
	if err := f.Only("dangling", "reference", "label", "label!"); err != nil {
		return nil, err
	}
	dangling, byDangling, err := f.Bool("dangling")
	if err != nil {
		return nil, err
	}
	for _, p := range f["reference"] {
		if _, err := path.Match(p, ""); err != nil {
			return nil, errdefs.Invalid("invalid reference filter %q: %v", p, err)
		}
	}
	out := []ImageSummary{}
	for _, img := range list {
		if byDangling && (len(img.RepoTags) == 0) != dangling {
			continue
		}
		if !f.MatchLabels(img.Labels) {
			continue
		}
		if refs, ok := f["reference"]; ok {
			matched := false
			for _, tag := range img.RepoTags {
				for _, p := range refs {
					a, _ := path.Match(p, tag)
					b, _ := path.Match(p, stripTag(tag))
					matched = matched || a || b
				}
			}
			if !matched {
				continue
			}
		}
		out = append(out, img)
	}
	return out, nil
}
