package events

import (
	"testing"
	"time"
)

// TestSubscribeSinceThenLive: a subscriber gets the kept events at or after since, then every
// later one, with no gap or repeat; one that falls too far behind is dropped, not waited for.
func TestSubscribeSinceThenLive(t *testing.T) {
	l := New()
	clock := time.Unix(1000, 0)
	l.now = func() time.Time { clock = clock.Add(time.Second); return clock }
	l.Emit("network", "create", "n1", map[string]string{"name": "a"})
	l.Emit("container", "create", "c1", map[string]string{"image": "busybox", "name": "c"})
	past, live, cancel := l.Subscribe(time.Unix(1002, 0))
	defer cancel()
	if len(past) != 1 || past[0].Actor.ID != "c1" || past[0].Status != "create" || past[0].From != "busybox" {
		t.Fatalf("past since 1002: %+v", past)
	}
	l.Emit("container", "start", "c1", nil)
	if m := <-live; m.Action != "start" || m.TimeNano != time.Unix(1003, 0).UnixNano() {
		t.Errorf("live: %+v", m)
	}
	if past, _, c := l.Subscribe(time.Time{}); len(past) != 0 {
		t.Errorf("no since gave %d past events", len(past))
	} else {
		c()
	}
	for i := 0; i < subscriberBuffer+1; i++ {
		l.Emit("container", "die", "c1", nil)
	}
	n := 0
	for range live {
		n++
	}
	if n != subscriberBuffer || l.Listeners() != 0 {
		t.Errorf("a subscriber that fell behind got %d events and %d listeners remain", n, l.Listeners())
	}
	for i := 0; i < keep+10; i++ {
		l.Emit("image", "tag", "x", nil)
	}
	if past, _, c := l.Subscribe(time.Unix(1, 0)); len(past) != keep {
		t.Errorf("kept %d events, want %d", len(past), keep)
	} else {
		c()
	}
}
