package dockerplugin

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// decodeOptions turns an Options object as dockerd sends it into what the handler hands the
// backend, so that the helpers are tested on the values they really get.
func decodeOptions(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestPortBindings(t *testing.T) {
	for _, tc := range []struct {
		name    string
		options string
		want    []PortBinding
		wantErr string
	}{
		{name: "no entry", options: `{"com.docker.network.endpoint.exposedports":[]}`},
		{name: "null", options: `{"com.docker.network.portmap":null}`},
		{name: "empty list", options: `{"com.docker.network.portmap":[]}`, want: []PortBinding{}},
		{
			name:    "-p 8080:80",
			options: `{"com.docker.network.portmap":[{"Proto":6,"IP":"","Port":80,"HostIP":"","HostPort":8080,"HostPortEnd":8080}]}`,
			want:    []PortBinding{{Proto: "tcp", ContainerPort: 80, HostPort: 8080, HostPortEnd: 8080}},
		},
		{
			name: "udp range on an address, sctp on v6, -P",
			options: `{"com.docker.network.portmap":[
				{"Proto":17,"IP":"","Port":53,"HostIP":"127.0.0.1","HostPort":5300,"HostPortEnd":5310},
				{"Proto":132,"IP":"","Port":9,"HostIP":"::1","HostPort":9999,"HostPortEnd":9999},
				{"Proto":6,"IP":"","Port":443,"HostIP":"","HostPort":0,"HostPortEnd":0}]}`,
			want: []PortBinding{
				{Proto: "udp", ContainerPort: 53, HostIP: "127.0.0.1", HostPort: 5300, HostPortEnd: 5310},
				{Proto: "sctp", ContainerPort: 9, HostIP: "::1", HostPort: 9999, HostPortEnd: 9999},
				{Proto: "tcp", ContainerPort: 443},
			},
		},
		{
			name:    "HostPortEnd 0 is a single port",
			options: `{"com.docker.network.portmap":[{"Proto":6,"Port":80,"HostPort":8080}]}`,
			want:    []PortBinding{{Proto: "tcp", ContainerPort: 80, HostPort: 8080, HostPortEnd: 8080}},
		},
		{name: "icmp", options: `{"com.docker.network.portmap":[{"Proto":1,"Port":80}]}`,
			wantErr: "com.docker.network.portmap[0]: protocol 1 is not tcp (6), udp (17) or sctp (132)"},
		{name: "no protocol", options: `{"com.docker.network.portmap":[{"Port":80}]}`,
			wantErr: "protocol 0 is not tcp"},
		{name: "container port 0", options: `{"com.docker.network.portmap":[{"Proto":6,"Port":0}]}`,
			wantErr: "com.docker.network.portmap[0]: container port 0 is not in 1-65535"},
		{name: "container port too big", options: `{"com.docker.network.portmap":[{"Proto":6,"Port":80},{"Proto":6,"Port":65536}]}`,
			wantErr: "com.docker.network.portmap[1]: container port 65536 is not in 1-65535"},
		{name: "fractional port", options: `{"com.docker.network.portmap":[{"Proto":6,"Port":80.5}]}`,
			wantErr: "com.docker.network.portmap: want a list of port bindings: json: cannot unmarshal number 80.5"},
		{name: "negative host port", options: `{"com.docker.network.portmap":[{"Proto":6,"Port":80,"HostPort":-1}]}`,
			wantErr: "host port -1 is not in 0-65535"},
		{name: "host port end too big", options: `{"com.docker.network.portmap":[{"Proto":6,"Port":80,"HostPort":80,"HostPortEnd":70000}]}`,
			wantErr: "host port range end 70000 is not in 0-65535"},
		{name: "range backwards", options: `{"com.docker.network.portmap":[{"Proto":6,"Port":80,"HostPort":8010,"HostPortEnd":8000}]}`,
			wantErr: "host port range 8010-8000 ends before it starts"},
		{name: "range end without start", options: `{"com.docker.network.portmap":[{"Proto":6,"Port":80,"HostPortEnd":8000}]}`,
			wantErr: "host port range end 8000 without a start"},
		{name: "bad host IP", options: `{"com.docker.network.portmap":[{"Proto":6,"Port":80,"HostIP":"localhost"}]}`,
			wantErr: `com.docker.network.portmap[0]: host IP: ParseAddr("localhost")`},
		{name: "not a list", options: `{"com.docker.network.portmap":"80:80"}`,
			wantErr: "com.docker.network.portmap: want a list of port bindings"},
		{name: "entry not an object", options: `{"com.docker.network.portmap":[80]}`,
			wantErr: "com.docker.network.portmap: want a list of port bindings"},
		{name: "port a string", options: `{"com.docker.network.portmap":[{"Proto":6,"Port":"80"}]}`,
			wantErr: "com.docker.network.portmap: want a list of port bindings"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := PortBindings(decodeOptions(t, tc.options))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want one containing %q", err, tc.wantErr)
				}
				if got != nil {
					t.Errorf("got %v with an error", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %#v\nwant %#v", got, tc.want)
			}
		})
	}
	// A nil map (a request without Options) has no ports.
	if got, err := PortBindings(nil); got != nil || err != nil {
		t.Errorf("PortBindings(nil) = %v, %v", got, err)
	}
}

func TestGenericOptions(t *testing.T) {
	for _, tc := range []struct {
		name, options string
		want          map[string]string
	}{
		{name: "no entry", options: `{"com.docker.network.enable_ipv6":false}`},
		{name: "null", options: `{"com.docker.network.generic":null}`},
		{name: "not an object", options: `{"com.docker.network.generic":"mtu=1400"}`},
		{name: "empty", options: `{"com.docker.network.generic":{}}`, want: map[string]string{}},
		{
			name:    "docker network create -o",
			options: `{"com.docker.network.generic":{"com.docker.network.driver.mtu":"1400","parent":"eth0.10"}}`,
			want:    map[string]string{"com.docker.network.driver.mtu": "1400", "parent": "eth0.10"},
		},
		{
			name:    "other values are stringified",
			options: `{"com.docker.network.generic":{"mtu":1400,"big":1e21,"frac":0.5,"on":true,"none":null,"list":[1,"a"],"obj":{"b":2,"a":1}}}`,
			want: map[string]string{
				"mtu": "1400", "big": "1000000000000000000000", "frac": "0.5", "on": "true", "none": "",
				"list": `[1,"a"]`, "obj": `{"a":1,"b":2}`,
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := GenericOptions(decodeOptions(t, tc.options)); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %#v, want %#v", got, tc.want)
			}
		})
	}
	// Options built in Go rather than decoded from dockerd's JSON.
	in := map[string]string{"parent": "eth0"}
	got := GenericOptions(map[string]any{"com.docker.network.generic": in})
	if !reflect.DeepEqual(got, in) {
		t.Errorf("got %v, want %v", got, in)
	}
	got["parent"] = "changed"
	if in["parent"] != "eth0" {
		t.Error("GenericOptions returned the caller's map, not a copy")
	}
}
