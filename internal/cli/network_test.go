package cli

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cnet-dev/cnet/internal/api"
)

// The networks of the first seed (docker 20.10 on a fresh host) plus user networks whose names
// exercise sorting.
func testNetworks() []api.Network {
	created := time.Date(2020, 7, 28, 8, 21, 59, 821050359, time.UTC)
	return []api.Network{
		{Name: "none", ID: "33a0f0fd85e2e0b4b5b4f4e1c6b5d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f7a8b", Driver: "null", Scope: "local", Created: created},
		{Name: "net10", ID: "10aa0f0fd85e2e0b4b5b4f4e1c6b5d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f7a8", Driver: "bridge", Scope: "local", Created: created,
			Labels: map[string]string{"com.example.team": "net", "env": "prod"}, EnableIPv6: true},
		{Name: "bridge", ID: "eeff6a1308cca652363d7e236f95c2ec97b852fe1a9ed92a1658ce248d21243d", Driver: "bridge", Scope: "local", Created: created},
		{Name: "net2", ID: "20bb0f0fd85e2e0b4b5b4f4e1c6b5d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f7a8", Driver: "macvlan", Scope: "local", Created: created, Internal: true},
		{Name: "host", ID: "da0bbc153406e0b4b5b4f4e1c6b5d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f7a8b", Driver: "host", Scope: "local", Created: created},
	}
}

func TestNetworkListOutput(t *testing.T) {
	tests := []struct {
		name string
		opts networkListOptions
		want string
	}{
		{"default table", networkListOptions{}, "" +
			"NETWORK ID     NAME      DRIVER    SCOPE\n" +
			"eeff6a1308cc   bridge    bridge    local\n" +
			"da0bbc153406   host      host      local\n" +
			"20bb0f0fd85e   net2      macvlan   local\n" +
			"10aa0f0fd85e   net10     bridge    local\n" +
			"33a0f0fd85e2   none      null      local\n"},
		{"quiet", networkListOptions{quiet: true}, "eeff6a1308cc\nda0bbc153406\n20bb0f0fd85e\n10aa0f0fd85e\n33a0f0fd85e2\n"},
		{"quiet no-trunc", networkListOptions{quiet: true, noTrunc: true, filters: []string{"name=bridge"}},
			"eeff6a1308cca652363d7e236f95c2ec97b852fe1a9ed92a1658ce248d21243d\n"},
		{"table keyword alone", networkListOptions{format: "table", filters: []string{"driver=host"}}, "" +
			"NETWORK ID     NAME      DRIVER    SCOPE\n" +
			"da0bbc153406   host      host      local\n"},
		{"custom table", networkListOptions{format: `table {{.ID}}\t{{.Name}}`, filters: []string{"type=builtin"}}, "" +
			"NETWORK ID     NAME\n" +
			"eeff6a1308cc   bridge\n" +
			"da0bbc153406   host\n" +
			"33a0f0fd85e2   none\n"},
		{"every header", networkListOptions{format: `table {{.Name}}\t{{.IPv6}}\t{{.Internal}}\t{{.Labels}}\t{{.Label "com.example.team"}}\t{{.CreatedAt}}`, filters: []string{"type=custom"}}, "" +
			"NAME      IPV6      INTERNAL   LABELS                          team      CREATED AT\n" +
			"net2      false     true                                                 2020-07-28 08:21:59.821050359 +0000 UTC\n" +
			"net10     true      false      com.example.team=net,env=prod   net       2020-07-28 08:21:59.821050359 +0000 UTC\n"},
		{"header of a label column", networkListOptions{format: `table {{.Label "com.example.my-team"}}`, filters: []string{"name=^net1"}}, "" +
			"my team\n" +
			"\n"},
		{"bare template", networkListOptions{format: "{{.Name}}: {{.Driver}}"}, "bridge: bridge\nhost: host\nnet2: macvlan\nnet10: bridge\nnone: null\n"},
		{"template functions", networkListOptions{format: `{{upper .Name}} {{title .Driver}} {{truncate .ID 4}} {{join (split .Name "e") "-"}} {{pad .Scope 1 1}}|{{json .Name}}`, filters: []string{"id=eeff"}},
			"BRIDGE Bridge eeff bridg-  local |\"bridge\"\n"},
		{"println", networkListOptions{format: `{{println .Name}}`, filters: []string{"name=host"}}, "host\n\n"},
		{"json", networkListOptions{format: "json", filters: []string{"label=env=prod"}},
			`{"CreatedAt":"2020-07-28 08:21:59.821050359 +0000 UTC","Driver":"bridge","ID":"10aa0f0fd85e","IPv6":"true","Internal":"false","Labels":"com.example.team=net,env=prod","Name":"net10","Scope":"local"}` + "\n"},
		{"json of the row", networkListOptions{format: "{{json .}}", noTrunc: true, filters: []string{"name=none"}},
			`{"CreatedAt":"2020-07-28 08:21:59.821050359 +0000 UTC","Driver":"null","ID":"33a0f0fd85e2e0b4b5b4f4e1c6b5d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f7a8b","IPv6":"false","Internal":"false","Labels":"","Name":"none","Scope":"local"}` + "\n"},
		{"nothing matches, table", networkListOptions{filters: []string{"driver=overlay"}}, "NETWORK ID   NAME      DRIVER    SCOPE\n"},
		{"nothing matches, template", networkListOptions{format: "{{.Name}}", filters: []string{"driver=overlay"}}, ""},
		{"filters of one key are alternatives", networkListOptions{format: "{{.Name}}", filters: []string{"driver=null", "driver=host"}}, "host\nnone\n"},
		{"filters of different keys must all match", networkListOptions{format: "{{.Name}}", filters: []string{"driver=bridge", "label=env"}}, "net10\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := parseFilterFlags(tt.opts.filters)
			if err != nil {
				t.Fatal(err)
			}
			nets, err := api.FilterNetworks(f, testNetworks(), nil)
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			if err := writeNetworks(&out, tt.opts, nets); err != nil {
				t.Fatal(err)
			}
			if out.String() != tt.want {
				t.Errorf("got:\n%s\nwant:\n%s", out.String(), tt.want)
			}
		})
	}
}

func TestNetworkFilterErrors(t *testing.T) {
	for _, arg := range []string{"driver", "colour=blue", "type=mine"} {
		f, err := parseFilterFlags([]string{arg})
		if err == nil {
			_, err = api.FilterNetworks(f, testNetworks(), nil)
		}
		if err == nil {
			t.Errorf("filter %q accepted", arg)
		}
	}
}

func TestBadTemplate(t *testing.T) {
	var out bytes.Buffer
	err := writeNetworks(&out, networkListOptions{format: "{{.Name"}, testNetworks())
	if err == nil || !strings.HasPrefix(err.Error(), "template parsing error:") {
		t.Fatalf("got %v", err)
	}
}

// seedBridge is `docker network inspect bridge` from the second seed, byte for byte.
const seedBridge = `[
    {
        "Name": "bridge",
        "Id": "fb3cbeb79136ff648e1d3d99ccb1384e655b3827ba8d6db780e9cee3e2628698",
        "Created": "2022-06-28T03:42:53.895128076Z",
        "Scope": "local",
        "Driver": "bridge",
        "EnableIPv6": false,
        "IPAM": {
            "Driver": "default",
            "Options": null,
            "Config": [
                {
                    "Subnet": "172.17.0.0/16"
                }
            ]
        },
        "Internal": false,
        "Attachable": false,
        "Ingress": false,
        "ConfigFrom": {
            "Network": ""
        },
        "ConfigOnly": false,
        "Containers": {},
        "Options": {
            "com.docker.network.bridge.default_bridge": "true",
            "com.docker.network.bridge.enable_icc": "true",
            "com.docker.network.bridge.enable_ip_masquerade": "true",
            "com.docker.network.bridge.host_binding_ipv4": "0.0.0.0",
            "com.docker.network.bridge.name": "docker0",
            "com.docker.network.driver.mtu": "1500"
        },
        "Labels": {}
    }
]
`

func seedBridgeNetwork() api.Network {
	return api.Network{
		Name:    "bridge",
		ID:      "fb3cbeb79136ff648e1d3d99ccb1384e655b3827ba8d6db780e9cee3e2628698",
		Created: time.Date(2022, 6, 28, 3, 42, 53, 895128076, time.UTC),
		Scope:   "local", Driver: "bridge",
		IPAM:       api.IPAM{Driver: "default", Config: []api.IPAMConfig{{Subnet: "172.17.0.0/16"}}},
		Containers: map[string]api.EndpointResource{},
		Options: map[string]string{
			"com.docker.network.bridge.default_bridge":       "true",
			"com.docker.network.bridge.enable_icc":           "true",
			"com.docker.network.bridge.enable_ip_masquerade": "true",
			"com.docker.network.bridge.host_binding_ipv4":    "0.0.0.0",
			"com.docker.network.bridge.name":                 "docker0",
			"com.docker.network.driver.mtu":                  "1500",
		},
		Labels: map[string]string{},
	}
}

// seedLocalnet is the user network of the second seed with one container.
func seedLocalnet() api.Network {
	return api.Network{
		Name: "localnet", ID: "30441f25c1f0b9fbaf3689b02b51497988114c9cd74f96bf7d37afb30156a9c5",
		Scope: "local", Driver: "bridge",
		IPAM: api.IPAM{Driver: "default", Options: map[string]string{},
			Config: []api.IPAMConfig{{Subnet: "172.18.0.0/16", Gateway: "172.18.0.1"}}},
		Containers: map[string]api.EndpointResource{
			"32dc71f35b767c4474df550b6112ed8403eb8cfbd9869a725dcee2a10bdf6855": {
				Name: "c1", EndpointID: "03e677435fdcaef5ee5ffaa8b467c1b328488b24522545dfe1fb6a2e087da8c8",
				MacAddress: "02:42:ac:12:00:02", IPv4Address: "172.18.0.2/16",
			},
		},
		Options: map[string]string{},
		Labels:  map[string]string{},
	}
}

// asServed is what the client hands the CLI: the value and the daemon's JSON for it.
func asServed(t *testing.T, v any) inspected {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return inspected{typed: v, raw: raw}
}

func TestNetworkInspectMatchesSeed(t *testing.T) {
	var out bytes.Buffer
	if err := writeInspect(&out, "", []inspected{asServed(t, seedBridgeNetwork())}); err != nil {
		t.Fatal(err)
	}
	if out.String() != seedBridge {
		t.Errorf("got:\n%s\nwant:\n%s", out.String(), seedBridge)
	}
}

func TestInspectKeepsTheDaemonsJSON(t *testing.T) {
	// Key order and null are the daemon's, even where a re-encoding would differ.
	raw := []byte(`{"Name":"x","Id":"1","Options":null,"Labels":{}}`)
	var out bytes.Buffer
	if err := writeInspect(&out, "", []inspected{{typed: api.Network{}, raw: raw}}); err != nil {
		t.Fatal(err)
	}
	want := "[\n    {\n        \"Name\": \"x\",\n        \"Id\": \"1\",\n        \"Options\": null,\n        \"Labels\": {}\n    }\n]\n"
	if out.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", out.String(), want)
	}
	out.Reset()
	if err := writeInspect(&out, "", nil); err != nil || out.String() != "[]\n" {
		t.Errorf("no objects: %q, %v", out.String(), err)
	}
}

func TestInspectTemplates(t *testing.T) {
	objs := []inspected{asServed(t, seedLocalnet()), asServed(t, seedBridgeNetwork())}
	tests := []struct{ format, want string }{
		{`{{json .IPAM.Config}}`, `[{"Subnet":"172.18.0.0/16","Gateway":"172.18.0.1"}]` + "\n" + `[{"Subnet":"172.17.0.0/16"}]` + "\n"},
		{`{{range .Containers}}{{.IPv4Address}}{{end}}`, "172.18.0.2/16\n\n"},
		{`{{.Name}} {{index .Options "com.docker.network.bridge.name"}}`, "localnet \nbridge docker0\n"},
		// .Id is the JSON key, not the Go field: docker falls back to the JSON as a map.
		{`{{.Id}}`, "30441f25c1f0b9fbaf3689b02b51497988114c9cd74f96bf7d37afb30156a9c5\nfb3cbeb79136ff648e1d3d99ccb1384e655b3827ba8d6db780e9cee3e2628698\n"},
		{`{{.Created}}`, "0001-01-01 00:00:00 +0000 UTC\n2022-06-28 03:42:53.895128076 +0000 UTC\n"},
	}
	for _, tt := range tests {
		var out bytes.Buffer
		if err := writeInspect(&out, tt.format, objs); err != nil {
			t.Errorf("%s: %v", tt.format, err)
			continue
		}
		if out.String() != tt.want {
			t.Errorf("%s:\n got %q\nwant %q", tt.format, out.String(), tt.want)
		}
	}
	var out bytes.Buffer
	if err := writeInspect(&out, "{{.Nope}}", objs); err == nil {
		t.Error("a template naming no field was accepted")
	}
}

func TestIPAMPools(t *testing.T) {
	tests := []struct {
		name                      string
		subnets, ranges, gateways []string
		aux                       map[string]string
		want                      []api.IPAMConfig
		err                       string
	}{
		{name: "none", want: []api.IPAMConfig{}},
		{name: "macvlan seed", subnets: []string{"10.0.2.0/24"}, ranges: []string{"10.0.2.0/25"}, gateways: []string{"10.0.2.1"},
			want: []api.IPAMConfig{{Subnet: "10.0.2.0/24", IPRange: "10.0.2.0/25", Gateway: "10.0.2.1"}}},
		{name: "paired by containment, not by order",
			subnets: []string{"172.20.0.0/16", "172.21.0.0/16"}, gateways: []string{"172.21.0.1", "172.20.0.1"},
			aux: map[string]string{"router": "172.21.0.2", "nas": "172.20.0.3"},
			want: []api.IPAMConfig{
				{Subnet: "172.20.0.0/16", Gateway: "172.20.0.1", AuxiliaryAddresses: map[string]string{"nas": "172.20.0.3"}},
				{Subnet: "172.21.0.0/16", Gateway: "172.21.0.1", AuxiliaryAddresses: map[string]string{"router": "172.21.0.2"}},
			}},
		{name: "ipv6", subnets: []string{"10.1.0.0/24", "fd00:1::/64"}, gateways: []string{"fd00:1::1"},
			want: []api.IPAMConfig{{Subnet: "10.1.0.0/24"}, {Subnet: "fd00:1::/64", Gateway: "fd00:1::1"}}},
		{name: "gateway without subnet", gateways: []string{"10.0.0.1"}, err: "every ip-range or gateway must have a corresponding subnet"},
		{name: "gateway outside", subnets: []string{"10.0.0.0/24"}, gateways: []string{"10.0.1.1"}, err: "no matching subnet for gateway 10.0.1.1"},
		{name: "range outside", subnets: []string{"10.0.0.0/24"}, ranges: []string{"10.0.1.0/25"}, err: "no matching subnet for range 10.0.1.0/25"},
		{name: "aux outside", subnets: []string{"10.0.0.0/24"}, aux: map[string]string{"a": "10.9.9.9"}, err: "no matching subnet for aux-address 10.9.9.9"},
		{name: "two gateways", subnets: []string{"10.0.0.0/24", "10.0.1.0/24"}, gateways: []string{"10.0.0.1", "10.0.0.2"}, err: "cannot configure multiple gateways (10.0.0.2, 10.0.0.1) for the same subnet (10.0.0.0/24)"},
		{name: "overlap", subnets: []string{"10.0.0.0/16", "10.0.5.0/24"}, err: "multiple overlapping subnet configuration is not supported"},
		{name: "bad subnet", subnets: []string{"10.0.0.0"}, err: "invalid subnet 10.0.0.0: want CIDR notation such as 172.20.0.0/16"},
		{name: "bad gateway", subnets: []string{"10.0.0.0/24"}, gateways: []string{"gw"}, err: "invalid gateway gw: not an IP address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ipamPools(tt.subnets, tt.ranges, tt.gateways, tt.aux)
			if tt.err != "" {
				if err == nil || err.Error() != tt.err {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestNetworkCreateRequestFromFlags(t *testing.T) {
	o := &networkCreateOptions{auxAddrs: map[string]string{}, opts: map[string]string{}, labels: map[string]string{}, ipamOpts: map[string]string{}}
	cmd := o.command()
	args := []string{"-d", "macvlan", "--subnet=10.0.2.0/24", "--ip-range=10.0.2.0/25", "--gateway=10.0.2.1",
		"-o", "parent=enp0s3.100", "--label", "team=net", "--label", "bare", "--internal", "--attachable", "--ipv6", "macvlan100"}
	if err := cmd.ParseFlags(args); err != nil {
		t.Fatal(err)
	}
	got, err := o.request(cmd.Flags().Arg(0))
	if err != nil {
		t.Fatal(err)
	}
	want := api.NetworkCreateRequest{
		Name: "macvlan100", CheckDuplicate: true, Driver: "macvlan", EnableIPv6: true, Internal: true, Attachable: true,
		IPAM:    &api.IPAM{Driver: "default", Config: []api.IPAMConfig{{Subnet: "10.0.2.0/24", IPRange: "10.0.2.0/25", Gateway: "10.0.2.1"}}},
		Options: map[string]string{"parent": "enp0s3.100"},
		Labels:  map[string]string{"team": "net", "bare": ""},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
}
