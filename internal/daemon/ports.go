package daemon

import (
	"strconv"

	"github.com/cnet-dev/cnet/internal/api"
	"github.com/cnet-dev/cnet/internal/controller"
)

// requestedPorts turns the container's -p bindings (and -P's exposed ports) into mappings,
// validated; the controller publishes them on the container's gateway network at start.
func requestedPorts(hc api.HostConfig, exposed map[string]struct{}) ([]controller.PortMapping, error) {
	bindings := make(map[string][]controller.PortBinding, len(hc.PortBindings))
	for key, bs := range hc.PortBindings {
		out := make([]controller.PortBinding, 0, len(bs))
		for _, b := range bs {
			out = append(out, controller.PortBinding{HostIP: b.HostIP, HostPort: b.HostPort})
		}
		bindings[key] = out
	}
	return controller.ParsePorts(bindings, hc.PublishAllPorts, exposed)
}

// portsView is inspect's NetworkSettings.Ports: every exposed or published container port,
// with its host bindings while running.
func (d *Daemon) portsView(rec containerRecord) map[string][]api.PortBinding {
	out := map[string][]api.PortBinding{}
	for key := range rec.Config.ExposedPorts {
		out[key] = nil
	}
	for key := range rec.HostConfig.PortBindings {
		if k, ok := controller.PortKey(key); ok {
			out[k] = nil
		}
	}
	if !rec.State.Running {
		return out
	}
	for _, m := range d.ctrl.PublishedPorts(rec.ID) {
		key := m.Port().String()
		out[key] = append(out[key], api.PortBinding{HostIP: m.HostIP.String(), HostPort: strconv.Itoa(int(m.HostPort))})
	}
	return out
}

// portsList is ps's Ports: published ones with their host side, exposed ones without.
func (d *Daemon) portsList(rec containerRecord) []api.Port {
	out := []api.Port{}
	for key, bindings := range d.portsView(rec) {
		p, ok := controller.ParsePortKey(key)
		if !ok {
			continue
		}
		if len(bindings) == 0 {
			out = append(out, api.Port{PrivatePort: p.Num, Type: p.Proto})
		}
		for _, b := range bindings {
			hp, _ := strconv.Atoi(b.HostPort)
			out = append(out, api.Port{IP: b.HostIP, PrivatePort: p.Num, PublicPort: uint16(hp), Type: p.Proto})
		}
	}
	return out
}

// hostModePortsWarning is Docker's warning for -p with --net host.
const hostModePortsWarning = "Published ports are discarded when using host network mode"

func hasPorts(hc api.HostConfig) bool { return len(hc.PortBindings) > 0 || hc.PublishAllPorts }
