package integration

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cnet-dev/cnet/internal/testenv"
)

// inHostWithDocker runs a command in h with DOCKER_HOST at cnet's socket, with a deadline.
func inHostWithDocker(t *testing.T, h *testenv.Host, dir string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	env := []string{"DOCKER_HOST=unix://" + h.Socket, "DOCKER_CONFIG=" + filepath.Join(h.Dir, "dockercfg"), "COMPOSE_INTERACTIVE_NO_CLI=1"}
	cmd := h.CmdContext(ctx, "env", append(env, args...)...)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("%s: no answer within its deadline\n%s", strings.Join(args, " "), out)
	}
	return string(out), err
}

// hostWithBusybox is a test host whose cnet has the tests' busybox image as busybox:latest.
func hostWithBusybox(t *testing.T) *testenv.Host {
	t.Helper()
	h := testenv.NewHost(t)
	archive := filepath.Join(h.Dir, "busybox.tar")
	busyboxImageTar(t, archive, "busybox:latest")
	h.MustCLI("load", "-i", archive)
	return h
}

// dockerPyScript is what a docker-py user does: a labelled network and container, connect with
// an alias, read attrs, filter lists, exec, disconnect and remove. It prints OK at the end; an
// assertion that fails exits non-zero with its message.
const dockerPyScript = `
import docker
c = docker.from_env(timeout=60)
assert c.version()["ApiVersion"] == "1.43", c.version()
net = c.networks.create("pynet", driver="bridge", labels={"made.by": "docker-py"})
ctr = c.containers.run("busybox", ["sleep", "600"], detach=True, name="pyc", labels={"role": "test"})
net.connect(ctr, aliases=["pyalias"])
ctr.reload(); net.reload()
assert ctr.attrs["State"]["Status"] == "running", ctr.attrs["State"]
assert sorted(ctr.attrs["NetworkSettings"]["Networks"]) == ["bridge", "pynet"], ctr.attrs["NetworkSettings"]
assert "pyalias" in ctr.attrs["NetworkSettings"]["Networks"]["pynet"]["Aliases"]
assert ctr.labels == {"role": "test"}, ctr.labels
assert net.attrs["Labels"] == {"made.by": "docker-py"}, net.attrs
assert [x.name for x in net.containers] == ["pyc"]
assert [x.name for x in c.containers.list(filters={"label": "role=test"})] == ["pyc"]
assert [x.name for x in c.networks.list(filters={"label": "made.by=docker-py"})] == ["pynet"]
# The sleep: docker-py reads an exec's output from the raw socket, past what its HTTP library
# already buffered with the response headers, and loses output that came with them
# (docker/docker-py#3332, the same against Docker); output a moment later is read whole.
res = ctr.exec_run(["sh", "-c", "sleep 0.3; nslookup pyalias 127.0.0.11"])
assert res.exit_code == 0 and "Address: 172." in res.output.decode(), res
net.disconnect(ctr)
ctr.reload()
assert sorted(ctr.attrs["NetworkSettings"]["Networks"]) == ["bridge"]
ctr.remove(force=True)
net.remove()
assert c.containers.list(all=True) == [] and [n.name for n in c.networks.list(names=["pynet"])] == []
print("OK", docker.__version__)
`

// TestDockerPy: docker-py (the machine's Python's; .ci/run installs Debian's if it has none)
// on cnet's socket.
func TestDockerPy(t *testing.T) {
	if err := exec.Command("python3", "-c", "import docker").Run(); err != nil {
		t.Skipf("docker-py is not installed for python3: %v", err)
	}
	h := hostWithBusybox(t)
	script := filepath.Join(h.Dir, "dockerpy.py")
	if err := os.WriteFile(script, []byte(dockerPyScript), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := inHostWithDocker(t, h, h.Dir, "python3", script)
	if err != nil || !strings.HasPrefix(out, "OK ") {
		t.Fatalf("docker-py: %v\n%s", err, out)
	}
	t.Logf("docker-py %s", strings.TrimSpace(strings.TrimPrefix(out, "OK ")))
	h.MustCLI("rmi", "busybox")
}

// composeFile has two services on two networks: web on front with an alias and a published
// port, client on front and back, started after web.
const composeFile = `version: "3.8"
services:
  web:
    image: busybox
    command: ["httpd", "-f", "-p", "80", "-h", "/www"]
    networks:
      front:
        aliases: [site]
    ports: ["8080:80"]
  client:
    image: busybox
    command: ["sleep", "600"]
    depends_on: [web]
    networks: [front, back]
networks:
  front: {}
  back: {}
`

// TestCompose: docker-compose 1.29 on cnet's socket: up -d makes the networks and starts web
// before client; names and aliases resolve across services; the published port answers from
// the host; ps and exec work; down removes containers and networks.
func TestCompose(t *testing.T) {
	if _, err := exec.LookPath("docker-compose"); err != nil {
		t.Skipf("docker-compose is not installed: %v", err)
	}
	h := hostWithBusybox(t)
	dir := filepath.Join(h.Dir, "proj")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "docker-compose.yml"), []byte(composeFile), 0o644); err != nil {
		t.Fatal(err)
	}
	compose := func(args ...string) string {
		t.Helper()
		out, err := inHostWithDocker(t, h, dir, append([]string{"docker-compose", "-f", filepath.Join(dir, "docker-compose.yml"), "-p", "demo"}, args...)...)
		if err != nil {
			t.Fatalf("docker-compose %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	compose("up", "-d")
	nets := h.MustCLI("network", "ls", "--format", "{{.Name}}")
	if !strings.Contains(nets, "demo_front\n") || !strings.Contains(nets, "demo_back\n") {
		t.Errorf("networks after up: %q", nets)
	}
	started := h.MustCLI("inspect", "-f", "{{.State.StartedAt}}", "demo_web_1", "demo_client_1")
	if times := strings.Fields(started); len(times) != 2 || times[0] > times[1] {
		t.Errorf("web did not start before client (depends_on): %v", times)
	}
	ps := compose("ps")
	for _, want := range []string{"demo_web_1", "demo_client_1", "0.0.0.0:8080->80/tcp", "Up"} {
		if !strings.Contains(ps, want) {
			t.Errorf("compose ps has no %q:\n%s", want, ps)
		}
	}
	// Compose's exec goes through docker-py (COMPOSE_INTERACTIVE_NO_CLI), which loses output
	// that arrives with the response headers (docker/docker-py#3332, the same against Docker):
	// the commands start with a short sleep.
	for _, name := range []string{"web", "site"} {
		if out := compose("exec", "-T", "client", "sh", "-c", "sleep 0.3; wget -qO- http://"+name+"/index.html"); out != "served by the busybox image\n" {
			t.Errorf("client fetching http://%s/: %q", name, out)
		}
	}
	if out := compose("exec", "-T", "web", "sh", "-c", "sleep 0.3; nslookup client 127.0.0.11"); !strings.Contains(out, "Address: 172.") {
		t.Errorf("web resolving client:\n%s", out)
	}
	if out := h.MustRun("busybox", "wget", "-qO-", "http://127.0.0.1:8080/index.html"); out != "served by the busybox image\n" {
		t.Errorf("the published port from the host: %q", out)
	}
	compose("down")
	if out := h.MustCLI("ps", "-aq"); out != "" {
		t.Errorf("containers after down: %q", out)
	}
	if out := h.MustCLI("network", "ls", "--format", "{{.Name}}"); out != "bridge\nhost\nnone\n" {
		t.Errorf("networks after down: %q", out)
	}
	h.MustCLI("rmi", "busybox")
}
