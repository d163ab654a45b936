// Package events is the daemon's event log: what happened to containers, networks and images,
// in Docker's shape, kept in a bounded ring for `since` and fanned out to live subscribers
// (GET /events, `cnet events`, `docker events`).
package events

import (
	"sync"
	"time"
)

// Actor is what an event is about: its ID and attributes (name, image, network type, ...).
type Actor struct {
	ID         string            `json:"ID"`
	Attributes map[string]string `json:"Attributes"`
}

// Message is one event, Docker's events.Message (with the legacy status/id/from fields that
// docker-py and older clients still read).
type Message struct {
	Status   string `json:"status,omitempty"`
	ID       string `json:"id,omitempty"`
	From     string `json:"from,omitempty"`
	Type     string `json:"Type"`
	Action   string `json:"Action"`
	Actor    Actor  `json:"Actor"`
	Scope    string `json:"scope"`
	Time     int64  `json:"time"`
	TimeNano int64  `json:"timeNano"`
}

// When is the event's time.
func (m Message) When() time.Time { return time.Unix(0, m.TimeNano) }

// keep is how many past events the log holds for `since`: Docker keeps 256; a few more cost
// nothing and let a test's burst of events be replayed whole.
const keep = 1024

// subscriberBuffer is how many events a slow subscriber may fall behind before it is dropped
// (its stream ends), so that no subscriber can make the daemon wait.
const subscriberBuffer = 256

// Log is safe for concurrent use. Its lock is a leaf: Emit is called with other locks held.
type Log struct {
	mu   sync.Mutex
	past []Message
	subs map[chan Message]struct{}
	now  func() time.Time
}

// New returns an empty log.
func New() *Log { return &Log{subs: map[chan Message]struct{}{}, now: time.Now} }

// Emit records an event and hands it to every subscriber.
func (l *Log) Emit(typ, action, id string, attrs map[string]string) {
	if attrs == nil {
		attrs = map[string]string{}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	t := l.now()
	m := Message{Type: typ, Action: action, Actor: Actor{ID: id, Attributes: attrs}, Scope: "local",
		Time: t.Unix(), TimeNano: t.UnixNano()}
	if typ == "container" || typ == "image" {
		m.Status, m.ID, m.From = action, id, attrs["image"]
	}
	l.past = append(l.past, m)
	if len(l.past) > keep {
		l.past = append(l.past[:0:0], l.past[len(l.past)-keep:]...)
	}
	for ch := range l.subs {
		select {
		case ch <- m:
		default:
			// Too far behind: its stream ends rather than the daemon waiting for it.
			delete(l.subs, ch)
			close(ch)
		}
	}
}

// Subscribe returns the kept events at or after since (none for a zero since) and a channel
// of the events after them, with no gap or overlap between the two; cancel ends it. The
// channel is closed if the subscriber falls too far behind.
func (l *Log) Subscribe(since time.Time) (past []Message, live <-chan Message, cancel func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !since.IsZero() {
		for _, m := range l.past {
			if !m.When().Before(since) {
				past = append(past, m)
			}
		}
	}
	ch := make(chan Message, subscriberBuffer)
	l.subs[ch] = struct{}{}
	return past, ch, func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		if _, ok := l.subs[ch]; ok {
			delete(l.subs, ch)
			close(ch)
		}
	}
}

// Listeners is how many subscribers there are (/info's NEventsListener).
func (l *Log) Listeners() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.subs)
}
