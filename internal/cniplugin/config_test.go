package cniplugin

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/cnet-dev/cnet/internal/api"
)

// errCode returns the CNI code of err, failing the test when err is not a *types.Error
// (skel would turn it into 999 and lose the code we meant).
func errCode(t *testing.T, err error) uint {
	t.Helper()
	var te *types.Error
	if !errors.As(err, &te) {
		t.Fatalf("error %v (%T) is not a *types.Error", err, err)
	}
	return te.Code
}

func TestParseConfig(t *testing.T) {
	tests := []struct {
		name     string
		conf     string
		wantCode uint // 0: no error
		wantMsg  string
		check    func(t *testing.T, c *NetConf)
	}{
		{
			name:     "network missing",
			conf:     `{"cniVersion":"1.0.0","name":"podnet","type":"cnet"}`,
			wantCode: types.ErrInvalidNetworkConfig,
			wantMsg:  `set "network"`,
		},
		{
			name:     "not JSON",
			conf:     `{"cniVersion":`,
			wantCode: types.ErrDecodingFailure,
		},
		{
			name: "host defaults to the daemon's socket",
			conf: `{"cniVersion":"1.0.0","name":"podnet","type":"cnet","network":"web"}`,
			check: func(t *testing.T, c *NetConf) {
				if c.Host != api.DefaultHost || c.Network != "web" || c.Name != "podnet" || c.CNIVersion != "1.0.0" {
					t.Errorf("got host %q network %q name %q version %q", c.Host, c.Network, c.Name, c.CNIVersion)
				}
			},
		},
		{
			name: "host given",
			conf: `{"cniVersion":"1.0.0","name":"podnet","type":"cnet","network":"web","host":"unix:///tmp/x.sock"}`,
			check: func(t *testing.T, c *NetConf) {
				if c.Host != "unix:///tmp/x.sock" {
					t.Errorf("host %q", c.Host)
				}
			},
		},
		{
			name: "aliases as a list",
			conf: `{"cniVersion":"1.0.0","name":"podnet","network":"web","runtimeConfig":{"aliases":["a","b"]}}`,
			check: func(t *testing.T, c *NetConf) {
				if got := c.RuntimeConfig.Aliases.For(c.Name, c.Network); !reflect.DeepEqual(got, []string{"a", "b"}) {
					t.Errorf("aliases %q", got)
				}
			},
		},
		{
			name: "aliases as Podman's map, keyed by the CNI network name",
			conf: `{"cniVersion":"1.0.0","name":"podnet","network":"web","runtimeConfig":{"aliases":{"podnet":["a"],"other":["x"]}}}`,
			check: func(t *testing.T, c *NetConf) {
				if got := c.RuntimeConfig.Aliases.For(c.Name, c.Network); !reflect.DeepEqual(got, []string{"a"}) {
					t.Errorf("aliases %q", got)
				}
			},
		},
		{
			name: "aliases map keyed by the cnet network",
			conf: `{"cniVersion":"1.0.0","name":"podnet","network":"web","runtimeConfig":{"aliases":{"web":["w"]}}}`,
			check: func(t *testing.T, c *NetConf) {
				if got := c.RuntimeConfig.Aliases.For(c.Name, c.Network); !reflect.DeepEqual(got, []string{"w"}) {
					t.Errorf("aliases %q", got)
				}
			},
		},
		{
			name: "aliases map without this network",
			conf: `{"cniVersion":"1.0.0","name":"podnet","network":"web","runtimeConfig":{"aliases":{"other":["x"]}}}`,
			check: func(t *testing.T, c *NetConf) {
				if got := c.RuntimeConfig.Aliases.For(c.Name, c.Network); len(got) != 0 {
					t.Errorf("aliases %q", got)
				}
			},
		},
		{
			name:     "aliases of another shape",
			conf:     `{"cniVersion":"1.0.0","name":"podnet","network":"web","runtimeConfig":{"aliases":"a"}}`,
			wantCode: types.ErrDecodingFailure,
			wantMsg:  "aliases",
		},
		{
			name: "port mappings",
			conf: `{"cniVersion":"1.0.0","name":"podnet","network":"web","runtimeConfig":{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp","hostIP":"127.0.0.1"}]}}`,
			check: func(t *testing.T, c *NetConf) {
				want := []api.CNIPortMapping{{HostPort: 8080, ContainerPort: 80, Protocol: "tcp", HostIP: "127.0.0.1"}}
				if !reflect.DeepEqual(c.RuntimeConfig.PortMappings, want) {
					t.Errorf("port mappings %+v", c.RuntimeConfig.PortMappings)
				}
			},
		},
		{
			name: "prevResult parsed",
			conf: `{"cniVersion":"1.0.0","name":"podnet","network":"web","prevResult":{"cniVersion":"1.0.0","interfaces":[{"name":"eth0"}]}}`,
			check: func(t *testing.T, c *NetConf) {
				if c.PrevResult == nil {
					t.Fatal("no prevResult")
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseConfig([]byte(tt.conf))
			if tt.wantCode != 0 {
				if code := errCode(t, err); code != tt.wantCode {
					t.Fatalf("code %d, want %d (%v)", code, tt.wantCode, err)
				}
				if !strings.Contains(err.Error(), tt.wantMsg) {
					t.Errorf("message %q does not say %q", err, tt.wantMsg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

func TestParseArgs(t *testing.T) {
	tests := []struct {
		name     string
		args     string
		wantCode uint
		want     Args
	}{
		{name: "empty"},
		{
			name: "pod name and IP",
			args: "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;IP=10.0.0.9",
			want: Args{CommonArgs: types.CommonArgs{IgnoreUnknown: true}, K8S_POD_NAMESPACE: "default", K8S_POD_NAME: "web-0", IP: "10.0.0.9"},
		},
		{
			name: "kubernetes keys need no IgnoreUnknown",
			args: "K8S_POD_NAME=a;K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=u",
			want: Args{K8S_POD_NAME: "a", K8S_POD_INFRA_CONTAINER_ID: "abc", K8S_POD_UID: "u"},
		},
		{
			name: "unknown key ignored when asked",
			args: "IgnoreUnknown=true;FOO=bar;MAC=02:42:0a:00:00:09",
			want: Args{CommonArgs: types.CommonArgs{IgnoreUnknown: true}, MAC: "02:42:0a:00:00:09"},
		},
		{name: "unknown key refused", args: "FOO=bar", wantCode: types.ErrInvalidEnvironmentVariables},
		{name: "malformed pair", args: "K8S_POD_NAME", wantCode: types.ErrInvalidEnvironmentVariables},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseArgs(tt.args)
			if tt.wantCode != 0 {
				if code := errCode(t, err); code != tt.wantCode {
					t.Fatalf("code %d, want %d", code, tt.wantCode)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if *got != tt.want {
				t.Errorf("got %+v, want %+v", *got, tt.want)
			}
		})
	}
}

func TestAttachRequest(t *testing.T) {
	tests := []struct {
		name     string
		conf     string
		args     string
		wantCode uint
		wantIP   string
		wantIP6  string
		wantName string
		wantMAC  string
	}{
		{name: "no static address", conf: `{}`},
		{name: "ips capability, prefix dropped", conf: `{"ips":["10.0.0.5/24"]}`, wantIP: "10.0.0.5"},
		{name: "ips capability without prefix", conf: `{"ips":["fd00::5"]}`, wantIP6: "fd00::5"},
		{name: "one address of each family", conf: `{"ips":["10.0.0.5/24","fd00::5/64"]}`, wantIP: "10.0.0.5", wantIP6: "fd00::5"},
		{name: "CNI_ARGS IP", conf: `{}`, args: "IP=10.0.0.7", wantIP: "10.0.0.7"},
		{name: "ips wins over CNI_ARGS", conf: `{"ips":["10.0.0.5/24"]}`, args: "IP=10.0.0.7", wantIP: "10.0.0.5"},
		{name: "two IPv4 addresses refused", conf: `{"ips":["10.0.0.5/24","10.0.0.6/24"]}`, wantCode: types.ErrUnsupportedField},
		{name: "two IPv6 addresses refused", conf: `{"ips":["fd00::5/64","fd00::6"]}`, wantCode: types.ErrUnsupportedField},
		{name: "bad ips", conf: `{"ips":["nope/24"]}`, wantCode: types.ErrInvalidNetworkConfig},
		{name: "bad CNI_ARGS IP", conf: `{}`, args: "IP=nope", wantCode: types.ErrInvalidEnvironmentVariables},
		{name: "mac capability", conf: `{"mac":"02:00:00:00:00:01"}`, wantMAC: "02:00:00:00:00:01"},
		{name: "CNI_ARGS MAC", conf: `{}`, args: "MAC=02:00:00:00:00:02", wantMAC: "02:00:00:00:00:02"},
		{name: "pod name", conf: `{}`, args: "K8S_POD_NAME=web-0", wantName: "web-0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conf, err := parseConfig([]byte(`{"cniVersion":"1.0.0","name":"podnet","network":"web","runtimeConfig":` + tt.conf + `}`))
			if err != nil {
				t.Fatal(err)
			}
			args, err := parseArgs(tt.args)
			if err != nil {
				t.Fatal(err)
			}
			req, err := attachRequest(conf, args, "ctr1", "/run/netns/x", "eth0")
			if tt.wantCode != 0 {
				if code := errCode(t, err); code != tt.wantCode {
					t.Fatalf("code %d, want %d (%v)", code, tt.wantCode, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := api.CNIAttachRequest{ContainerID: "ctr1", Netns: "/run/netns/x", IfName: "eth0", Network: "web", Name: tt.wantName, IP: tt.wantIP, IP6: tt.wantIP6, MAC: tt.wantMAC}
			if !reflect.DeepEqual(req, want) {
				t.Errorf("got %+v, want %+v", req, want)
			}
		})
	}
}
