package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/cnet-dev/cnet/internal/errdefs"
	"github.com/cnet-dev/cnet/internal/events"
)

// EventsBackend is what GET /events streams from.
type EventsBackend interface {
	// SubscribeEvents returns the kept events at or after since (none for zero), then the
	// live ones; cancel ends the subscription.
	SubscribeEvents(since time.Time) (past []events.Message, live <-chan events.Message, cancel func())
}

// eventFilters are the keys GET /events takes, as Docker's.
var eventFilters = []string{"type", "event", "container", "network", "image", "label", "scope", "daemon"}

// eventIncluded applies Docker's event filters: every key given must match. container and
// network match the actor's ID or name by prefix (Docker's fuzzy match), image the actor or its
// image by name with or without tag, label the actor's attributes.
func eventIncluded(f Filters, m events.Message) bool {
	attrs := m.Actor.Attributes
	fuzzy := func(key string) bool {
		return f.Match(key, m.Actor.ID, true) || f.Match(key, attrs["name"], true)
	}
	imageName := attrs["image"]
	if m.Type == "image" {
		imageName = attrs["name"]
	}
	image := f.Match("image", m.Actor.ID, false) || f.Match("image", imageName, false) ||
		f.Match("image", stripTag(imageName), false)
	return f.Match("type", m.Type, false) && f.Match("event", m.Action, false) && f.Match("scope", m.Scope, false) &&
		fuzzy("container") && fuzzy("network") && image && f.MatchLabels(attrs)
}

// stripTag is an image name without its tag ("busybox:latest" → "busybox").
func stripTag(name string) string {
	if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
		return name[:i]
	}
	return name
}

// events streams events as Docker's GET /events: those kept since `since`, then live ones
// until `until` (or until the client goes), each a JSON object, flushed as it comes.
func (s *server) events(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	now := time.Now()
	var since, until time.Time
	var err error
	if v := q.Get("since"); v != "" {
		if since, err = parseTimestamp(v, now); err != nil {
			writeError(w, err)
			return
		}
	}
	if v := q.Get("until"); v != "" {
		if until, err = parseTimestamp(v, now); err != nil {
			writeError(w, err)
			return
		}
	}
	if !since.IsZero() && !until.IsZero() && until.Before(since) {
		writeError(w, errdefs.Invalid("`until` is before `since`"))
		return
	}
	f, err := ParseFilters(q.Get("filters"))
	if err == nil {
		err = f.Only(eventFilters...)
	}
	if err != nil {
		writeError(w, err)
		return
	}
	// With either bound given, the kept events are replayed (from the oldest when only until
	// is), as Docker's; with neither, only what happens from now on is sent.
	from := since
	if from.IsZero() && !until.IsZero() {
		from = time.Unix(0, 1)
	}
	past, live, cancel := s.b.SubscribeEvents(from)
	defer cancel()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	enc := json.NewEncoder(w)
	send := func(m events.Message) bool {
		if !until.IsZero() && m.When().After(until) {
			return false
		}
		if eventIncluded(f, m) {
			if enc.Encode(m) != nil {
				return false
			}
		}
		return true
	}
	for _, m := range past {
		if !send(m) {
			return
		}
	}
	if flusher != nil {
		flusher.Flush()
	}
	var deadline <-chan time.Time
	if !until.IsZero() {
		if !until.After(time.Now()) {
			return
		}
		t := time.NewTimer(time.Until(until))
		defer t.Stop()
		deadline = t.C
	}
	for {
		select {
		case m, ok := <-live:
			if !ok || !send(m) {
				return
			}
			if flusher != nil {
				flusher.Flush()
			}
		case <-deadline:
			return
		case <-r.Context().Done():
			return
		}
	}
}

// Events is GET /events: fn gets each event until the stream ends (until reached) or ctx does.
// since and until are Docker's forms (Unix seconds, RFC 3339, or a duration before now).
func (c *Client) Events(ctx context.Context, since, until string, f Filters, fn func(events.Message)) error {
	q := url.Values{}
	if since != "" {
		q.Set("since", since)
	}
	if until != "" {
		q.Set("until", until)
	}
	if len(f) > 0 {
		q.Set("filters", f.Encode())
	}
	resp, err := c.send(ctx, http.MethodGet, "/events", q, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for {
		var m events.Message
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) || ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("reading the daemon's events: %w", err)
		}
		fn(m)
	}
}
