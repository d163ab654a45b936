package cniplugin

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/cnet-dev/cnet/internal/api"
)

var testAttachment = api.CNIAttachment{
	ContainerID: "ctr1", IfName: "eth0", Netns: "/run/netns/x", Network: "web",
	MacAddress: "02:42:0a:00:00:05", Address: "10.0.0.5/24", Gateway: "10.0.0.1", DNS: []string{"127.0.0.11"},
}

// printed renders res for cniVersion the way the runtime receives it, as generic JSON.
func printed(t *testing.T, res types.Result, cniVersion string) map[string]any {
	t.Helper()
	var buf bytes.Buffer
	if err := printResult(&buf, res, cniVersion); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatalf("%v: %s", err, buf.Bytes())
	}
	return m
}

func TestResultVersions(t *testing.T) {
	res, err := buildResult(testAttachment, "/run/netns/x", nil)
	if err != nil {
		t.Fatal(err)
	}
	iface := map[string]any{"name": "eth0", "mac": "02:42:0a:00:00:05", "sandbox": "/run/netns/x"}
	route := []any{map[string]any{"dst": "0.0.0.0/0", "gw": "10.0.0.1"}}
	dns := map[string]any{"nameservers": []any{"127.0.0.11"}}
	tests := []struct {
		version string
		want    map[string]any
	}{
		{"1.0.0", map[string]any{
			"cniVersion": "1.0.0", "interfaces": []any{iface}, "routes": route, "dns": dns,
			"ips": []any{map[string]any{"interface": 0.0, "address": "10.0.0.5/24", "gateway": "10.0.0.1"}},
		}},
		{"1.1.0", map[string]any{
			"cniVersion": "1.1.0", "interfaces": []any{iface}, "routes": route, "dns": dns,
			"ips": []any{map[string]any{"interface": 0.0, "address": "10.0.0.5/24", "gateway": "10.0.0.1"}},
		}},
		{"0.4.0", map[string]any{
			"cniVersion": "0.4.0", "interfaces": []any{iface}, "routes": route, "dns": dns,
			"ips": []any{map[string]any{"version": "4", "interface": 0.0, "address": "10.0.0.5/24", "gateway": "10.0.0.1"}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.version, func(t *testing.T) {
			if got := printed(t, res, tt.version); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %v\nwant %v", got, tt.want)
			}
		})
	}
}

func TestResultWithoutGatewayOrDNS(t *testing.T) {
	att := testAttachment
	att.Gateway, att.DNS, att.Address = "", nil, "fd00::5/64"
	res, err := buildResult(att, "/run/netns/x", nil)
	if err != nil {
		t.Fatal(err)
	}
	got := printed(t, res, "1.0.0")
	for _, k := range []string{"routes", "dns"} {
		if _, ok := got[k]; ok {
			t.Errorf("%s reported: %v", k, got)
		}
	}
	if ips := got["ips"].([]any); ips[0].(map[string]any)["address"] != "fd00::5/64" {
		t.Errorf("ips %v", ips)
	}
}

func TestResultIPv6DefaultRoute(t *testing.T) {
	att := testAttachment
	att.Address, att.Gateway = "fd00::5/64", "fd00::1"
	res, err := buildResult(att, "/run/netns/x", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Routes) != 1 || res.Routes[0].Dst.String() != "::/0" || res.Routes[0].GW.String() != "fd00::1" {
		t.Errorf("routes %v", res.Routes)
	}
}

func TestResultBadDaemonAnswer(t *testing.T) {
	for _, att := range []api.CNIAttachment{
		{IfName: "eth0", Address: "10.0.0.5"},
		{IfName: "eth0", Address: "10.0.0.5/24", Gateway: "gw"},
	} {
		if _, err := buildResult(att, "/run/netns/x", nil); err == nil {
			t.Errorf("%+v: no error", att)
		}
	}
}

// TestResultChained: after another plugin, its interfaces and addresses are kept and ours
// index our own interface.
func TestResultChained(t *testing.T) {
	prevJSON := `{"cniVersion":"0.4.0","interfaces":[{"name":"lo","sandbox":"/run/netns/x"}],
		"ips":[{"version":"4","interface":0,"address":"127.0.0.1/8"}]}`
	conf, err := parseConfig([]byte(`{"cniVersion":"0.4.0","name":"podnet","network":"web","prevResult":` + prevJSON + `}`))
	if err != nil {
		t.Fatal(err)
	}
	res, err := buildResult(testAttachment, "/run/netns/x", conf.PrevResult)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Interfaces) != 2 || res.Interfaces[0].Name != "lo" || res.Interfaces[1].Name != "eth0" {
		t.Fatalf("interfaces %v", res.Interfaces)
	}
	if len(res.IPs) != 2 || *res.IPs[0].Interface != 0 || *res.IPs[1].Interface != 1 || res.IPs[1].Address.String() != "10.0.0.5/24" {
		t.Fatalf("ips %v", res.IPs)
	}
	got := printed(t, res, "0.4.0")
	if got["cniVersion"] != "0.4.0" || len(got["ips"].([]any)) != 2 {
		t.Errorf("printed %v", got)
	}
}

func TestCheckAgainst(t *testing.T) {
	good, err := buildResult(testAttachment, "/run/netns/x", nil)
	if err != nil {
		t.Fatal(err)
	}
	mutate := func(f func(r *current.Result)) *current.Result {
		r, err := buildResult(testAttachment, "/run/netns/x", nil)
		if err != nil {
			t.Fatal(err)
		}
		f(r)
		return r
	}
	tests := []struct {
		name  string
		prev  *current.Result
		ifc   string
		netns string
		ok    bool
	}{
		{"matches", good, "eth0", "/run/netns/x", true},
		{"MAC case differs", mutate(func(r *current.Result) { r.Interfaces[0].Mac = "02:42:0A:00:00:05" }), "eth0", "/run/netns/x", true},
		{"other interface name", good, "eth1", "/run/netns/x", false},
		{"other sandbox", good, "eth0", "/run/netns/y", false},
		{"MAC differs", mutate(func(r *current.Result) { r.Interfaces[0].Mac = "02:42:0a:00:00:06" }), "eth0", "/run/netns/x", false},
		{"address in 16-byte form", mutate(func(r *current.Result) { r.IPs[0].Address.IP = r.IPs[0].Address.IP.To16() }), "eth0", "/run/netns/x", true},
		{"address differs", mutate(func(r *current.Result) { r.IPs[0].Address, _ = parseAddress("10.0.0.6/24") }), "eth0", "/run/netns/x", false},
		{"prefix differs", mutate(func(r *current.Result) { r.IPs[0].Address, _ = parseAddress("10.0.0.5/16") }), "eth0", "/run/netns/x", false},
		{"address on another interface", mutate(func(r *current.Result) {
			r.Interfaces = append(r.Interfaces, &current.Interface{Name: "eth1"})
			r.IPs[0].Interface = current.Int(1)
		}), "eth0", "/run/netns/x", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkAgainst(tt.prev, testAttachment, tt.ifc, tt.netns)
			if tt.ok && err != nil {
				t.Fatal(err)
			}
			if !tt.ok {
				if err == nil {
					t.Fatal("no error")
				}
				errCode(t, err)
			}
		})
	}
}
