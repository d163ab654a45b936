package api

import (
	"reflect"
	"testing"
	"time"
)

func TestParseFilters(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want Filters
		bad  bool
	}{
		{"", Filters{}, false},
		{`{"dangling":{"true":true}}`, Filters{"dangling": {"true"}}, false},
		{`{"label":["a=b","c"]}`, Filters{"label": {"a=b", "c"}}, false},
		{`{"name":{"x":true,"y":false}}`, Filters{"name": {"x"}}, false},
		{`{"name":"x"}`, nil, true},
		{`not json`, nil, true},
	} {
		got, err := ParseFilters(tt.in)
		if (err != nil) != tt.bad || (!tt.bad && !reflect.DeepEqual(got, tt.want)) {
			t.Errorf("ParseFilters(%q) = %v, %v", tt.in, got, err)
		}
		if !tt.bad {
			back, err := ParseFilters(got.Encode())
			if err != nil || !reflect.DeepEqual(back, got) {
				t.Errorf("Encode of %v does not read back: %v %v", got, back, err)
			}
		}
	}
}

func TestFilterMatching(t *testing.T) {
	labels := map[string]string{"env": "prod", "team": ""}
	for _, tt := range []struct {
		f    Filters
		want bool
	}{
		{Filters{}, true},
		{Filters{"label": {"env"}}, true},
		{Filters{"label": {"env=prod", "team"}}, true},
		{Filters{"label": {"env=dev"}}, false},
		{Filters{"label": {"env", "nope"}}, false},
		{Filters{"label!": {"env=dev"}}, true},
		{Filters{"label!": {"team"}}, false},
	} {
		if got := tt.f.MatchLabels(labels); got != tt.want {
			t.Errorf("%v.MatchLabels = %v, want %v", tt.f, got, tt.want)
		}
	}
	f := Filters{"id": {"abc"}, "name": {"web"}}
	if !f.Match("id", "abcdef", true) || f.Match("id", "xabc", true) || f.Match("name", "web2", false) || !f.Match("driver", "x", false) {
		t.Error("Match: prefix, exact or absent key wrong")
	}
	if _, _, err := (Filters{"dangling": {"maybe"}}).Bool("dangling"); err == nil {
		t.Error("dangling=maybe accepted")
	}
	if err := (Filters{"color": {"red"}}).Only("label"); err == nil || err.Error() != "invalid filter 'color'" {
		t.Errorf("Only: %v", err)
	}
}

func TestUntil(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		in   string
		want time.Time
	}{
		{"1h", now.Add(-time.Hour)},
		{"2026-12-01T10:00:00Z", time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)},
		{"1700000000", time.Unix(1700000000, 0)},
		{"1700000000.5", time.Unix(1700000000, 500000000)},
		{"0", time.Unix(0, 0)},
	} {
		got, ok, err := (Filters{"until": {tt.in}}).Until(now)
		if err != nil || !ok || !got.Equal(tt.want) {
			t.Errorf("until=%s: %v %v %v, want %v", tt.in, got, ok, err, tt.want)
		}
	}
	if _, _, err := (Filters{"until": {"yesterday"}}).Until(now); err == nil {
		t.Error("until=yesterday accepted")
	}
}
