package cli

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/creack/pty"
	"golang.org/x/term"

	"github.com/cnet-dev/cnet/internal/api"
)

// These tests drive whole command lines through NewRootCommand against the fake daemon. They
// check what the CLI sends and prints, nothing about networking.

func TestNetworkLsThroughTheDaemon(t *testing.T) {
	d := newFakeDaemon(t)
	out, errOut, code := d.cli("", "network", "ls")
	want := "NETWORK ID     NAME      DRIVER    SCOPE\n" +
		shortID(fakeID("bridge")) + "   bridge    bridge    local\n" +
		shortID(fakeID("host")) + "   host      host      local\n" +
		shortID(fakeID("none")) + "   none      null      local\n"
	if code != 0 || out != want || errOut != "" {
		t.Errorf("code %d\nstdout:\n%s\nwant:\n%s\nstderr: %s", code, out, want, errOut)
	}
}

func TestNetworkCreateThroughTheDaemon(t *testing.T) {
	d := newFakeDaemon(t)
	out, errOut, code := d.cli("", "network", "create", "--subnet", "10.1.0.0/16", "--gateway", "10.1.0.1",
		"-o", "com.docker.network.bridge.name=br0", "--label", "team=net", "mybridge")
	if code != 0 || out != fakeID("mybridge")+"\n" || errOut != "" {
		t.Fatalf("code %d stdout %q stderr %q", code, out, errOut)
	}
	want := api.NetworkCreateRequest{Name: "mybridge", CheckDuplicate: true, Driver: "bridge",
		IPAM:    &api.IPAM{Driver: "default", Config: []api.IPAMConfig{{Subnet: "10.1.0.0/16", Gateway: "10.1.0.1"}}},
		Options: map[string]string{"com.docker.network.bridge.name": "br0"}, Labels: map[string]string{"team": "net"}}
	if len(d.netCreates) != 1 || !reflect.DeepEqual(d.netCreates[0], want) {
		t.Errorf("daemon got %+v\nwant %+v", d.netCreates, want)
	}

	_, errOut, code = d.cli("", "network", "create", "mybridge")
	if code != 1 || errOut != "Error response from daemon: network with name mybridge already exists\n" {
		t.Errorf("duplicate: code %d stderr %q", code, errOut)
	}
	_, errOut, code = d.cli("", "network", "create", "--gateway", "10.9.0.1", "--subnet", "10.1.0.0/16", "other")
	if code != 1 || errOut != "no matching subnet for gateway 10.9.0.1\n" {
		t.Errorf("gateway outside the subnet: code %d stderr %q", code, errOut)
	}
}

func TestNetworkInspectRmPruneConnect(t *testing.T) {
	d := newFakeDaemon(t)
	out, errOut, code := d.cli("", "network", "inspect", "-f", "{{.Name}} {{.Driver}}", "host", "nope", "none")
	if code != 1 || out != "host host\nnone null\n" || errOut != "Error: No such network: nope\n" {
		t.Errorf("inspect: code %d stdout %q stderr %q", code, out, errOut)
	}
	out, _, code = d.cli("", "network", "inspect", "bridge")
	if code != 0 || !strings.HasPrefix(out, "[\n    {\n        \"Name\": \"bridge\",\n        \"Id\": \""+fakeID("bridge")+"\",\n") {
		t.Errorf("inspect JSON: code %d\n%s", code, out)
	}

	d.cli("", "network", "create", "n1")
	d.cli("", "network", "create", "n2")
	out, errOut, code = d.cli("", "network", "rm", "n1", "nope")
	if code != 1 || out != "n1\n" || errOut != "Error: No such network: nope\n" {
		t.Errorf("rm: code %d stdout %q stderr %q", code, out, errOut)
	}

	out, _, code = d.cli("n\n", "network", "prune")
	if code != 0 || out != pruneWarning {
		t.Errorf("declined prune: code %d stdout %q", code, out)
	}
	out, _, code = d.cli("y\n", "network", "prune")
	if code != 0 || out != pruneWarning+"Deleted Networks:\nn2\n\n" {
		t.Errorf("prune: code %d stdout %q", code, out)
	}
	out, _, code = d.cli("", "network", "prune", "-f")
	if code != 0 || out != "" {
		t.Errorf("prune with nothing to do: code %d stdout %q", code, out)
	}

	_, _, code = d.cli("", "network", "connect", "--ip", "172.18.0.9", "--alias", "db", "--alias", "sql", "bridge", "c1")
	want := api.NetworkConnectRequest{Container: "c1", EndpointConfig: &api.EndpointSettings{
		IPAMConfig: &api.EndpointIPAMConfig{IPv4Address: "172.18.0.9"}, Aliases: []string{"db", "sql"}}}
	if code != 0 || len(d.connects) != 1 || !reflect.DeepEqual(d.connects[0], want) {
		t.Errorf("connect: code %d, daemon got %+v", code, d.connects)
	}
}

func TestRunForeground(t *testing.T) {
	d := newFakeDaemon(t)
	out, errOut, code := d.cli("", "run", "--rootfs", "/", "--name", "a", "sh", "-c", "echo hi; echo oops >&2; exit 3")
	if code != 3 || out != "hi\n" || errOut != "oops\n" {
		t.Errorf("code %d stdout %q stderr %q", code, out, errOut)
	}
	if got, want := d.callLog(), []string{"create", "attach", "wait next-exit", "start"}; !reflect.DeepEqual(got, want) {
		t.Errorf("calls %q, want %q: attach and wait must come before start", got, want)
	}
	if c := d.container("a"); !reflect.DeepEqual(c.req.Cmd, []string{"sh", "-c", "echo hi; echo oops >&2; exit 3"}) {
		t.Errorf("Cmd %q", c.req.Cmd)
	}
}

func TestRunStdinAndTTY(t *testing.T) {
	d := newFakeDaemon(t)
	out, errOut, code := d.cli("piped input\n", "run", "--rootfs", "/", "-i", "cat")
	if code != 0 || out != "piped input\n" || errOut != "" {
		t.Errorf("-i: code %d stdout %q stderr %q", code, out, errOut)
	}
	// With a tty, stderr arrives on the one raw stream, as from a terminal.
	out, errOut, code = d.cli("", "run", "--rootfs", "/", "-t", "sh", "-c", "echo raw >&2")
	if code != 0 || out != "raw\n" || errOut != "" {
		t.Errorf("-t: code %d stdout %q stderr %q", code, out, errOut)
	}
	_, errOut, code = d.cli("", "run", "--rootfs", "/", "-it", "sh")
	if code != 125 || errOut != "cnet: the input device is not a TTY.\nSee 'cnet run --help'.\n" {
		t.Errorf("-it without a terminal: code %d stderr %q", code, errOut)
	}
}

func TestRunDetachedAndFailures(t *testing.T) {
	d := newFakeDaemon(t)
	out, _, code := d.cli("", "run", "--rootfs", "/", "-d", "--name", "bg", "sh", "-c", "exit 0")
	if code != 0 || out != fakeID("container 0 bg")+"\n" {
		t.Errorf("-d: code %d stdout %q", code, out)
	}
	if got := d.callLog(); !reflect.DeepEqual(got, []string{"create", "start"}) {
		t.Errorf("-d calls %q", got)
	}
	_, errOut, code := d.cli("", "run", "--rootfs", "/", "--net", "nonet", "sh")
	if code != 125 || errOut != "cnet: Error response from daemon: network nonet not found.\nSee 'cnet run --help'.\n" {
		t.Errorf("unknown network: code %d stderr %q", code, errOut)
	}
	_, errOut, code = d.cli("", "run", "--rootfs", "/", "nosuchcmd")
	if code != 127 || !strings.Contains(errOut, "executable file not found") {
		t.Errorf("unknown command: code %d stderr %q", code, errOut)
	}
	_, errOut, code = d.cli("", "run", "--rootfs", "/", "--bogus", "sh")
	if code != 125 || errOut != "unknown flag: --bogus\nSee 'cnet run --help'.\n" {
		t.Errorf("unknown flag: code %d stderr %q", code, errOut)
	}
	_, errOut, code = d.cli("", "run")
	if code != 1 || !strings.HasPrefix(errOut, "\"cnet run\" requires at least 1 argument.\nSee 'cnet run --help'.\n\nUsage:  cnet run [OPTIONS] IMAGE [COMMAND] [ARG...]\n") {
		t.Errorf("no command: code %d stderr %q", code, errOut)
	}
}

func TestExecThroughTheDaemon(t *testing.T) {
	d := newFakeDaemon(t)
	d.cli("", "run", "--rootfs", "/", "-d", "--name", "c1", "sh")
	out, errOut, code := d.cli("in\n", "exec", "-i", "c1", "sh", "-c", "cat; echo done >&2; exit 2")
	if code != 2 || out != "in\n" || errOut != "done\n" {
		t.Errorf("code %d stdout %q stderr %q", code, out, errOut)
	}
	_, errOut, code = d.cli("", "exec", "ghost", "true")
	if code != 1 || errOut != "Error: No such container: ghost\n" {
		t.Errorf("missing container: code %d stderr %q", code, errOut)
	}
}

func TestContainerCommandsThroughTheDaemon(t *testing.T) {
	d := newFakeDaemon(t)
	d.cli("", "run", "--rootfs", "/", "-d", "--name", "c1", "sh")
	out, _, code := d.cli("", "inspect", "-f", "{{.State.Pid}} {{.NetworkSettings.IPAddress}} {{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", "c1")
	if code != 0 || out != "4242 172.17.0.2 172.17.0.2\n" {
		t.Errorf("inspect container: code %d stdout %q", code, out)
	}
	out, errOut, code := d.cli("", "inspect", "--format", "{{.Name}}", "c1", "host", "ghost")
	if code != 1 || out != "/c1\nhost\n" || errOut != "Error: No such object: ghost\n" {
		t.Errorf("inspect mixed: code %d stdout %q stderr %q", code, out, errOut)
	}
	out, errOut, code = d.cli("", "logs", "c1")
	if code != 0 || out != "logged out\n" || errOut != "logged err\n" {
		t.Errorf("logs: code %d stdout %q stderr %q", code, out, errOut)
	}
	out, errOut, code = d.cli("", "stop", "-t", "3", "c1", "ghost")
	if code != 1 || out != "c1\n" || errOut != "Error response from daemon: No such container: ghost\n" {
		t.Errorf("stop: code %d stdout %q stderr %q", code, out, errOut)
	}
	out, errOut, code = d.cli("", "rm", "-f", "ghost", "c1")
	if code != 1 || out != "c1\n" || errOut != "Error: No such container: ghost\n" {
		t.Errorf("rm: code %d stdout %q stderr %q", code, out, errOut)
	}
	log := d.callLog()
	if !contains(log, "stop t=3") || !contains(log, "rm force=1") {
		t.Errorf("calls %q", log)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func TestNoDaemon(t *testing.T) {
	host := "unix://" + filepath.Join(t.TempDir(), "cnet.sock")
	want := "cannot connect to the cnet daemon at " + host + ": is it running?\n"
	for _, args := range [][]string{{"network", "ls"}, {"network", "rm", "a", "b"}, {"ps"}, {"stop", "a", "b"}} {
		root := NewRootCommand()
		root.SetArgs(append([]string{"-H", host}, args...))
		var out, errOut strings.Builder
		root.SetOut(&out)
		root.SetErr(&errOut)
		if code := Execute(root); code != 1 || errOut.String() != want || out.String() != "" {
			t.Errorf("%v: code %d stdout %q stderr %q", args, code, out.String(), errOut.String())
		}
	}
	t.Setenv(hostEnv, host)
	root := NewRootCommand()
	root.SetArgs([]string{"run", "--rootfs", "/", "sh"})
	var errOut strings.Builder
	root.SetErr(&errOut)
	if code := Execute(root); code != 125 || errOut.String() != want {
		t.Errorf("run via $%s: code %d stderr %q", hostEnv, code, errOut.String())
	}
}

func TestUnknownSubcommand(t *testing.T) {
	root := NewRootCommand()
	root.SetArgs([]string{"network", "bogus"})
	var errOut strings.Builder
	root.SetErr(&errOut)
	if code := Execute(root); code != 1 || !strings.HasPrefix(errOut.String(), "cnet network: 'bogus' is not a cnet command.") {
		t.Errorf("code %d stderr %q", code, errOut.String())
	}
}

func TestRunWithATerminalRestoresIt(t *testing.T) {
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo-terminal to test with: %v", err)
	}
	defer ptmx.Close()
	defer tty.Close()
	before, err := term.GetState(int(tty.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	d := newFakeDaemon(t)
	root := NewRootCommand()
	root.SetArgs([]string{"-H", "unix://" + d.sock, "run", "--rootfs", "/", "-it", "sh", "-c", "echo hi; exit 4"})
	var out strings.Builder
	root.SetIn(tty)
	root.SetOut(&out)
	if code := Execute(root); code != 4 || out.String() != "hi\n" {
		t.Errorf("code %d stdout %q", code, out.String())
	}
	if len(d.containers) != 1 || !d.containers[0].req.Tty || !d.containers[0].req.AttachStdin {
		t.Error("the daemon was not asked for a tty with stdin attached")
	}
	after, err := term.GetState(int(tty.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(before, after) {
		t.Error("the terminal was left in raw mode")
	}
}

// TestCreate: create makes the container and prints its ID without starting it; it has no -d.
func TestCreate(t *testing.T) {
	d := newFakeDaemon(t)
	out, _, code := d.cli("", "create", "--rootfs", "/", "--name", "made", "sh")
	if code != 0 || out != fakeID("container 0 made")+"\n" {
		t.Errorf("create: code %d stdout %q", code, out)
	}
	if got := d.callLog(); !reflect.DeepEqual(got, []string{"create"}) {
		t.Errorf("create calls %q", got)
	}
	if _, errOut, code := d.cli("", "create", "-d", "--rootfs", "/", "sh"); code == 0 || !strings.Contains(errOut, "unknown shorthand flag: 'd'") {
		t.Errorf("create -d: code %d stderr %q", code, errOut)
	}
	if _, errOut, code := d.cli("", "create", "--rootfs", "/", "--net", "nonet", "sh"); code != 125 || !strings.Contains(errOut, "See 'cnet create --help'") {
		t.Errorf("create on an unknown network: code %d stderr %q", code, errOut)
	}
}
