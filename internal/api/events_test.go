package api

import (
	"testing"

	"github.com/cnet-dev/cnet/internal/events"
)

func TestEventIncluded(t *testing.T) {
	connect := events.Message{Type: "network", Action: "connect", Scope: "local",
		Actor: events.Actor{ID: "net123", Attributes: map[string]string{"name": "front", "container": "c1", "type": "bridge"}}}
	start := events.Message{Type: "container", Action: "start", Scope: "local",
		Actor: events.Actor{ID: "abc456", Attributes: map[string]string{"name": "web", "image": "busybox:latest", "tier": "fe"}}}
	for _, tt := range []struct {
		f    Filters
		m    events.Message
		want bool
	}{
		{Filters{}, connect, true},
		{Filters{"type": {"network"}}, connect, true},
		{Filters{"type": {"container"}}, connect, false},
		{Filters{"event": {"connect", "disconnect"}}, connect, true},
		{Filters{"network": {"front"}}, connect, true},
		{Filters{"network": {"net1"}}, connect, true}, // an ID prefix
		{Filters{"network": {"back"}}, connect, false},
		{Filters{"container": {"web"}}, start, true},
		{Filters{"container": {"abc"}}, start, true},
		{Filters{"container": {"web"}}, connect, false}, // Docker's: the actor is the network
		{Filters{"image": {"busybox"}}, start, true},
		{Filters{"image": {"busybox:latest"}}, start, true},
		{Filters{"image": {"alpine"}}, start, false},
		{Filters{"label": {"tier=fe"}}, start, true},
		{Filters{"label": {"tier=be"}}, start, false},
	} {
		if got := eventIncluded(tt.f, tt.m); got != tt.want {
			t.Errorf("%v on %s %s: %v, want %v", tt.f, tt.m.Type, tt.m.Action, got, tt.want)
		}
	}
}
