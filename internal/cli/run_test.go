package cli

import (
	"reflect"
	"testing"

	"github.com/cnet-dev/cnet/internal/api"
)

func TestRunRequestFromFlags(t *testing.T) {
	t.Setenv("CNET_TEST_SECRET", "s3cret")
	tests := []struct {
		name string
		args []string
		want api.ContainerCreateRequest
	}{
		{
			name: "flags stop at the command",
			args: []string{"--name", "a", "--rootfs", "/", "sh", "-c", "echo -n x"},
			want: api.ContainerCreateRequest{
				ContainerConfig:  api.ContainerConfig{AttachStdout: true, AttachStderr: true, Env: []string{}, Cmd: []string{"sh", "-c", "echo -n x"}},
				HostConfig:       &api.HostConfig{NetworkMode: "default"},
				NetworkingConfig: &api.NetworkingConfig{EndpointsConfig: map[string]*api.EndpointSettings{}},
			},
		},
		{
			name: "the command's own flags are left alone",
			args: []string{"--rootfs", "/", "ls", "-la", "--name", "x"},
			want: api.ContainerCreateRequest{
				ContainerConfig:  api.ContainerConfig{AttachStdout: true, AttachStderr: true, Env: []string{}, Cmd: []string{"ls", "-la", "--name", "x"}},
				HostConfig:       &api.HostConfig{NetworkMode: "default"},
				NetworkingConfig: &api.NetworkingConfig{EndpointsConfig: map[string]*api.EndpointSettings{}},
			},
		},
		{
			name: "interactive tty",
			args: []string{"-it", "--net", "host", "--rootfs", "/", "sh"},
			want: api.ContainerCreateRequest{
				ContainerConfig: api.ContainerConfig{AttachStdin: true, AttachStdout: true, AttachStderr: true, Tty: true,
					OpenStdin: true, StdinOnce: true, Env: []string{}, Cmd: []string{"sh"}},
				HostConfig:       &api.HostConfig{NetworkMode: "host"},
				NetworkingConfig: &api.NetworkingConfig{EndpointsConfig: map[string]*api.EndpointSettings{}},
			},
		},
		{
			name: "an image, then its command",
			args: []string{"-d", "busybox", "httpd", "-f"},
			want: api.ContainerCreateRequest{
				ContainerConfig:  api.ContainerConfig{Env: []string{}, Image: "busybox", Cmd: []string{"httpd", "-f"}},
				HostConfig:       &api.HostConfig{NetworkMode: "default"},
				NetworkingConfig: &api.NetworkingConfig{EndpointsConfig: map[string]*api.EndpointSettings{}},
			},
		},
		{
			name: "an image alone: its own command",
			args: []string{"-d", "busybox"},
			want: api.ContainerCreateRequest{
				ContainerConfig:  api.ContainerConfig{Env: []string{}, Image: "busybox", Cmd: []string{}},
				HostConfig:       &api.HostConfig{NetworkMode: "default"},
				NetworkingConfig: &api.NetworkingConfig{EndpointsConfig: map[string]*api.EndpointSettings{}},
			},
		},
		{
			name: "detached on a user network with aliases and an address",
			args: []string{"-d", "-i", "--rm", "--name", "c1", "--net", "mybridge", "--net-alias", "yceffort",
				"--network-alias", "web", "--ip", "172.18.0.9", "-h", "box", "--domainname", "example.org",
				"-e", "A=1", "-e", "CNET_TEST_SECRET", "-e", "CNET_TEST_UNSET", "-w", "/tmp", "--rootfs", "/srv/alpine",
				"sleep", "1d"},
			want: api.ContainerCreateRequest{
				ContainerConfig: api.ContainerConfig{Hostname: "box", Domainname: "example.org", OpenStdin: true,
					Env: []string{"A=1", "CNET_TEST_SECRET=s3cret", "CNET_TEST_UNSET"}, Cmd: []string{"sleep", "1d"},
					WorkingDir: "/tmp", Rootfs: "/srv/alpine"},
				HostConfig: &api.HostConfig{NetworkMode: "mybridge", AutoRemove: true},
				NetworkingConfig: &api.NetworkingConfig{EndpointsConfig: map[string]*api.EndpointSettings{
					"mybridge": {IPAMConfig: &api.EndpointIPAMConfig{IPv4Address: "172.18.0.9"}, Aliases: []string{"yceffort", "web"}},
				}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var o runOptions
			cmd := o.command()
			if err := cmd.ParseFlags(tt.args); err != nil {
				t.Fatal(err)
			}
			got, err := o.request(cmd.Flags().Args())
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestRunHostnameIsNotHelp(t *testing.T) {
	var o runOptions
	cmd := o.command()
	if err := cmd.ParseFlags([]string{"-h", "box", "true"}); err != nil {
		t.Fatal(err)
	}
	if o.hostname != "box" {
		t.Errorf("-h gave hostname %q", o.hostname)
	}
	if err := cmd.ParseFlags([]string{"--help"}); err != nil {
		t.Fatalf("--help: %v", err)
	}
}

func TestExecRequestFromFlags(t *testing.T) {
	var o execOptions
	cmd := o.command()
	if err := cmd.ParseFlags([]string{"-i", "-e", "A=1", "-w", "/srv", "c1", "sh", "-c", "exit 2"}); err != nil {
		t.Fatal(err)
	}
	args := cmd.Flags().Args()
	if args[0] != "c1" {
		t.Fatalf("container %q", args[0])
	}
	got, err := o.request(args[1:])
	if err != nil {
		t.Fatal(err)
	}
	want := api.ExecCreateRequest{AttachStdin: true, AttachStdout: true, AttachStderr: true,
		Env: []string{"A=1"}, Cmd: []string{"sh", "-c", "exit 2"}, WorkingDir: "/srv"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
}

// TestRunEntrypoint: --entrypoint replaces the image's, "" clears it, and needs an image.
func TestRunEntrypoint(t *testing.T) {
	tests := []struct {
		args    []string
		want    []string
		wantErr bool
	}{
		{[]string{"--entrypoint", "/bin/sh", "busybox", "-c", "true"}, []string{"/bin/sh"}, false},
		{[]string{"--entrypoint", "", "busybox", "true"}, []string{}, false},
		{[]string{"busybox"}, nil, false},
		{[]string{"--entrypoint", "/bin/sh", "--rootfs", "/", "sh"}, nil, true},
	}
	for _, tt := range tests {
		var o runOptions
		cmd := o.command()
		if err := cmd.ParseFlags(tt.args); err != nil {
			t.Fatal(err)
		}
		got, err := o.request(cmd.Flags().Args())
		if (err != nil) != tt.wantErr {
			t.Errorf("%v: error %v", tt.args, err)
			continue
		}
		if err == nil && !reflect.DeepEqual(got.Entrypoint, tt.want) {
			t.Errorf("%v: Entrypoint %#v, want %#v", tt.args, got.Entrypoint, tt.want)
		}
	}
}
