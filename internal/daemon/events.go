package daemon

import (
	"maps"
	"sort"
	"strconv"
	"time"

	"github.com/cnet-dev/cnet/internal/events"
)

// SubscribeEvents implements api.Backend (GET /events).
func (d *Daemon) SubscribeEvents(since time.Time) ([]events.Message, <-chan events.Message, func()) {
	return d.events.Subscribe(since)
}

// containerEvent records a container event with Docker's attributes: the container's labels,
// its image and name, and extra (exitCode, signal, oldName). The caller holds c.mu (the log's
// lock is a leaf).
func (d *Daemon) containerEvent(rec *containerRecord, action string, extra map[string]string) {
	attrs := maps.Clone(rec.Config.Labels)
	if attrs == nil {
		attrs = map[string]string{}
	}
	attrs["image"] = imageName(*rec)
	attrs["name"] = rec.Name
	maps.Copy(attrs, extra)
	d.events.Emit("container", action, rec.ID, attrs)
}

// networkEvent records a network event; container is set for connect and disconnect.
func (d *Daemon) networkEvent(action, id, name, driver, container string) {
	attrs := map[string]string{"name": name, "type": driver}
	if container != "" {
		attrs["container"] = container
	}
	d.events.Emit("network", action, id, attrs)
}

// endpointEvents records connect (at a start) or disconnect (at an exit) for each network a
// container is on, in name order, as Docker reports its endpoints joining and leaving.
func (d *Daemon) endpointEvents(rec *containerRecord, action string) {
	names := make([]string, 0, len(rec.Networks))
	for n := range rec.Networks {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		if n, err := d.ctrl.Network(name); err == nil {
			d.networkEvent(action, n.ID, n.Name, n.Driver, rec.ID)
		}
	}
}

// imageEvent records an image event; name is the reference it concerns, if any.
func (d *Daemon) imageEvent(action, id, name string) {
	attrs := map[string]string{}
	if name != "" {
		attrs["name"] = name
	}
	d.events.Emit("image", action, id, attrs)
}

func exitAttrs(code int) map[string]string { return map[string]string{"exitCode": strconv.Itoa(code)} }
