package portmap

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/cnet-dev/cnet/internal/errdefs"
)

var lo = netip.MustParseAddr("127.0.0.1")

func TestParseSpec(t *testing.T) {
	tests := []struct {
		spec string
		want []Mapping
	}{
		{"80", []Mapping{{ContainerPort: 80, Proto: TCP}}},
		{"80/udp", []Mapping{{ContainerPort: 80, Proto: UDP}}},
		{"80/SCTP", []Mapping{{ContainerPort: 80, Proto: SCTP}}},
		{"8080:80", []Mapping{{HostPort: 8080, ContainerPort: 80, Proto: TCP}}},
		{"8080:80/tcp", []Mapping{{HostPort: 8080, ContainerPort: 80, Proto: TCP}}},
		{":80", []Mapping{{ContainerPort: 80, Proto: TCP}}},
		{"127.0.0.1:8080:80", []Mapping{{HostIP: lo, HostPort: 8080, ContainerPort: 80, Proto: TCP}}},
		{"[127.0.0.1]:8080:80", []Mapping{{HostIP: lo, HostPort: 8080, ContainerPort: 80, Proto: TCP}}},
		{"0.0.0.0:8080:80", []Mapping{{HostIP: netip.IPv4Unspecified(), HostPort: 8080, ContainerPort: 80, Proto: TCP}}},
		{"127.0.0.1::80/udp", []Mapping{{HostIP: lo, ContainerPort: 80, Proto: UDP}}},
		{"::80", []Mapping{{ContainerPort: 80, Proto: TCP}}},
		{"[::1]:8080:80", []Mapping{{HostIP: netip.IPv6Loopback(), HostPort: 8080, ContainerPort: 80, Proto: TCP}}},
		{"::1:8080:80/udp", []Mapping{{HostIP: netip.IPv6Loopback(), HostPort: 8080, ContainerPort: 80, Proto: UDP}}},
		{"[::]:8080:80", []Mapping{{HostIP: netip.IPv6Unspecified(), HostPort: 8080, ContainerPort: 80, Proto: TCP}}},
		{"[::ffff:127.0.0.1]:8080:80", []Mapping{{HostIP: lo, HostPort: 8080, ContainerPort: 80, Proto: TCP}}},
		{"65535:1", []Mapping{{HostPort: 65535, ContainerPort: 1, Proto: TCP}}},
		{"8000-8002:80-82", []Mapping{
			{HostPort: 8000, ContainerPort: 80, Proto: TCP},
			{HostPort: 8001, ContainerPort: 81, Proto: TCP},
			{HostPort: 8002, ContainerPort: 82, Proto: TCP},
		}},
		{"127.0.0.1:8000-8001:80-81/udp", []Mapping{
			{HostIP: lo, HostPort: 8000, ContainerPort: 80, Proto: UDP},
			{HostIP: lo, HostPort: 8001, ContainerPort: 81, Proto: UDP},
		}},
		{"80-81", []Mapping{{ContainerPort: 80, Proto: TCP}, {ContainerPort: 81, Proto: TCP}}},
		{"8000-8010:80", []Mapping{{HostPort: 8000, HostPortEnd: 8010, ContainerPort: 80, Proto: TCP}}},
		{"127.0.0.1:8000-8010:80/udp", []Mapping{{HostIP: lo, HostPort: 8000, HostPortEnd: 8010, ContainerPort: 80, Proto: UDP}}},
		{"8000-8000:80", []Mapping{{HostPort: 8000, ContainerPort: 80, Proto: TCP}}},
		{"8000:80-80", []Mapping{{HostPort: 8000, ContainerPort: 80, Proto: TCP}}},
	}
	for _, tt := range tests {
		got, err := ParseSpec(tt.spec)
		if err != nil {
			t.Errorf("ParseSpec(%q): %v", tt.spec, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseSpec(%q) = %+v, want %+v", tt.spec, got, tt.want)
		}
	}
}

func TestParseSpecLargeRange(t *testing.T) {
	got, err := ParseSpec("20000-20999:20000-20999")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1000 {
		t.Fatalf("got %d mappings, want 1000", len(got))
	}
	for i, m := range got {
		if m.HostPort != uint16(20000+i) || m.ContainerPort != uint16(20000+i) || m.Proto != TCP {
			t.Fatalf("mapping %d = %+v", i, m)
		}
	}
	all, err := ParseSpec("1-65535:1-65535/udp")
	if err != nil || len(all) != 65535 || all[65534].HostPort != 65535 {
		t.Fatalf("full range: %d mappings, err %v", len(all), err)
	}
}

func TestParseSpecErrors(t *testing.T) {
	tests := []struct {
		spec string
		want string // a part of the message that names what is wrong
	}{
		{"", "invalid port spec"},
		{"0", "port 0"},
		{"0:80", "port 0"},
		{"8080:0", "port 0"},
		{"65536:80", "65536 out of range"},
		{"80:70000", "70000 out of range"},
		{"99999999999999999999", "out of range"},
		{"abc", `"abc" is not a number`},
		{"80/icmp", `invalid protocol "icmp"`},
		{"80/", `invalid protocol ""`},
		{"80/tcp/udp", `invalid protocol "tcp/udp"`},
		{"8000-8010:80-85", "host range 8000-8010 has 11 ports but container range 80-85 has 6"},
		{"80-81:90-95", "has 2 ports but container range 90-95 has 6"},
		{"90-80", "ends before it starts"},
		{"8080:90-80", "ends before it starts"},
		{"80-", "empty port"},
		{"-80", "empty port"},
		{"8080:", "no container port"},
		{"1.2.3:80:80", `invalid host address "1.2.3"`},
		{"localhost:80:80", `invalid host address "localhost"`},
		{"300.1.1.1:80:80", `invalid host address "300.1.1.1"`},
		{"[fe80::1%eth0]:80:80", `invalid host address "fe80::1%eth0"`},
		{"[1.2.3.4:80:80", "unbalanced brackets"},
		{"[]:80:80", `"[]"`},
		{"+80", `"+80" is not a number`},
		{" 80", "is not a number"},
	}
	for _, tt := range tests {
		got, err := ParseSpec(tt.spec)
		if err == nil {
			t.Errorf("ParseSpec(%q) = %+v, want an error", tt.spec, got)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseSpec(%q) error %q does not say %q", tt.spec, err, tt.want)
		}
		if !errdefs.Is(err, errdefs.KindInvalid) {
			t.Errorf("ParseSpec(%q) error %q is not errdefs.Invalid", tt.spec, err)
		}
	}
}

func TestMappingString(t *testing.T) {
	tests := []struct {
		m    Mapping
		want string
	}{
		{Mapping{ContainerPort: 80, Proto: TCP}, "80/tcp"},
		{Mapping{HostPort: 8080, ContainerPort: 80, Proto: UDP}, "8080:80/udp"},
		{Mapping{HostIP: lo, ContainerPort: 80, Proto: TCP}, "127.0.0.1::80/tcp"},
		{Mapping{HostIP: netip.IPv6Loopback(), HostPort: 8080, ContainerPort: 80, Proto: TCP}, "[::1]:8080:80/tcp"},
		{Mapping{HostIP: lo, HostPort: 8000, HostPortEnd: 8010, ContainerPort: 80, Proto: SCTP}, "127.0.0.1:8000-8010:80/sctp"},
	}
	for _, tt := range tests {
		if got := tt.m.String(); got != tt.want {
			t.Errorf("%+v.String() = %q, want %q", tt.m, got, tt.want)
		}
	}
}

func TestParseExpose(t *testing.T) {
	got, err := ParseExpose("80")
	if err != nil || !reflect.DeepEqual(got, []Port{{80, TCP}}) {
		t.Errorf("ParseExpose(80) = %v, %v", got, err)
	}
	got, err = ParseExpose("8000-8002/udp")
	if err != nil || !reflect.DeepEqual(got, []Port{{8000, UDP}, {8001, UDP}, {8002, UDP}}) {
		t.Errorf("ParseExpose(8000-8002/udp) = %v, %v", got, err)
	}
	if got[0].String() != "8000/udp" {
		t.Errorf("Port.String() = %q", got[0].String())
	}
	for _, bad := range []string{"", "0", "80/icmp", "1.2.3.4:80", "90-80", "70000", "/tcp"} {
		if p, err := ParseExpose(bad); err == nil {
			t.Errorf("ParseExpose(%q) = %v, want an error", bad, p)
		}
	}
}

func TestParsePort(t *testing.T) {
	for s, want := range map[string]Port{"80": {80, TCP}, "80/tcp": {80, TCP}, "53/udp": {53, UDP}} {
		if got, err := ParsePort(s); err != nil || got != want {
			t.Errorf("ParsePort(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	for _, bad := range []string{"", "0/tcp", "80-81", "80/xyz"} {
		if p, err := ParsePort(bad); err == nil {
			t.Errorf("ParsePort(%q) = %v, want an error", bad, p)
		}
	}
}

func FuzzParseSpec(f *testing.F) {
	for _, s := range []string{"80", "8080:80/udp", "127.0.0.1::80", "1.2.3.4:8000-8010:80-90/sctp",
		"8000-8010:80", "[::1]:80:80", "0.0.0.0:1:1", "65535", "a:b:c", "::", "/", "-"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ms, err := ParseSpec(s)
		if err != nil {
			return
		}
		if len(ms) == 0 {
			t.Fatalf("ParseSpec(%q) returned no mapping and no error", s)
		}
		// A range is checked at its ends and start: the middle is the same code path.
		sample := ms
		if len(ms) > 8 {
			sample = append(ms[:4:4], ms[len(ms)-4:]...)
		}
		for _, m := range sample {
			back, err := ParseSpec(m.String())
			if err != nil {
				t.Fatalf("ParseSpec(%q) gave %+v whose String %q does not parse: %v", s, m, m.String(), err)
			}
			if len(back) != 1 || back[0] != m {
				t.Fatalf("ParseSpec(%q) gave %+v; its String %q parses to %+v", s, m, m.String(), back)
			}
			if m.ContainerPort == 0 || (m.HostPortEnd != 0 && m.HostPortEnd <= m.HostPort) {
				t.Fatalf("ParseSpec(%q) gave an impossible mapping %+v", s, m)
			}
		}
	})
}
