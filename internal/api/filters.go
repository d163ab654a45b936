package api

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/cnet-dev/cnet/internal/errdefs"
)

// Filters is Docker's `filters` query parameter: each key with the values asked for. A key's
// values are alternatives (any may match); different keys must all match, as in Docker.
type Filters map[string][]string

// ParseFilters reads the parameter in both of Docker's forms: {"key":{"value":true}} (what
// clients send since API 1.22) and the older {"key":["value"]}. "" is no filter.
func ParseFilters(s string) (Filters, error) {
	f := Filters{}
	if s == "" {
		return f, nil
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(s), &raw); err != nil {
		return nil, errdefs.Invalid("invalid filters %q: %v", s, err)
	}
	for k, v := range raw {
		var set map[string]bool
		if err := json.Unmarshal(v, &set); err == nil {
			for val, on := range set {
				if on {
					f[k] = append(f[k], val)
				}
			}
			sort.Strings(f[k])
			continue
		}
		var list []string
		if err := json.Unmarshal(v, &list); err != nil {
			return nil, errdefs.Invalid("invalid filter %q: its values must be a list or a set of strings", k)
		}
		f[k] = list
	}
	return f, nil
}

// Encode is the parameter in the current form ("" for no filter).
func (f Filters) Encode() string {
	if len(f) == 0 {
		return ""
	}
	m := map[string]map[string]bool{}
	for k, vs := range f {
		m[k] = map[string]bool{}
		for _, v := range vs {
			m[k][v] = true
		}
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// Add appends a value to key (for clients building a query).
func (f Filters) Add(key, value string) { f[key] = append(f[key], value) }

// Only refuses keys that the endpoint does not know, with Docker's message.
func (f Filters) Only(keys ...string) error {
	for k := range f {
		known := false
		for _, ok := range keys {
			known = known || k == ok
		}
		if !known {
			return errdefs.Invalid("invalid filter '%s'", k)
		}
	}
	return nil
}

// Bool reads a key that takes true/false (dangling): set says whether it was given.
func (f Filters) Bool(key string) (value, set bool, err error) {
	vs := f[key]
	if len(vs) == 0 {
		return false, false, nil
	}
	for _, v := range vs {
		b, perr := strconv.ParseBool(v)
		if perr != nil || (set && b != value) {
			return false, false, errdefs.Invalid("invalid filter '%s=%s': use true or false, once", key, v)
		}
		value, set = b, true
	}
	return value, set, nil
}

// Match says whether value is one of key's values; an absent key matches everything. With
// prefix, a value matches when it starts with one given (Docker's id filters).
func (f Filters) Match(key, value string, prefix bool) bool {
	vs, ok := f[key]
	if !ok {
		return true
	}
	for _, v := range vs {
		if v == value || (prefix && v != "" && strings.HasPrefix(value, v)) {
			return true
		}
	}
	return false
}

// MatchLabels applies `label` (every one given must be on the object: "key" or "key=value")
// and `label!` (none may be), as Docker does.
func (f Filters) MatchLabels(labels map[string]string) bool {
	has := func(want string) bool {
		k, v, withValue := strings.Cut(want, "=")
		got, ok := labels[k]
		return ok && (!withValue || got == v)
	}
	for _, want := range f["label"] {
		if !has(want) {
			return false
		}
	}
	for _, want := range f["label!"] {
		if has(want) {
			return false
		}
	}
	return true
}

// Until reads the `until` key (Docker's prune filter): a Go duration before now ("24h"), an
// RFC 3339 time, a date, or Unix seconds. ok is false when it was not given.
func (f Filters) Until(now time.Time) (t time.Time, ok bool, err error) {
	vs := f["until"]
	if len(vs) == 0 {
		return time.Time{}, false, nil
	}
	if len(vs) > 1 {
		return time.Time{}, false, errdefs.Invalid("more than one until filter")
	}
	t, err = parseTimestamp(vs[0], now)
	return t, err == nil, err
}

// parseTimestamp reads a time as Docker's --since/--until/until do.
func parseTimestamp(v string, now time.Time) (time.Time, error) {
	// "0" is the Unix epoch (docker events --since 0: everything kept), not "0s ago".
	if d, err := time.ParseDuration(v); err == nil && v != "0" {
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, v, time.Local); err == nil {
			return t, nil
		}
	}
	sec, frac, _ := strings.Cut(v, ".")
	s, err := strconv.ParseInt(sec, 10, 64)
	if err != nil {
		return time.Time{}, errdefs.Invalid("invalid time %q: give a duration (24h), an RFC 3339 time or Unix seconds", v)
	}
	var ns int64
	if frac != "" {
		frac = (frac + "000000000")[:9]
		if ns, err = strconv.ParseInt(frac, 10, 64); err != nil {
			return time.Time{}, errdefs.Invalid("invalid time %q: give a duration (24h), an RFC 3339 time or Unix seconds", v)
		}
	}
	return time.Unix(s, ns), nil
}

// String is the filters as `key=value` words, for messages.
func (f Filters) String() string {
	var words []string
	for k, vs := range f {
		for _, v := range vs {
			words = append(words, fmt.Sprintf("%s=%s", k, v))
		}
	}
	sort.Strings(words)
	return strings.Join(words, " ")
}
