package integration

import (
	"context"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cnet-dev/cnet/internal/api"
	"github.com/cnet-dev/cnet/internal/testenv"
)

// dockerCLI runs the machine's docker CLI (28) in h against cnet's socket, with a deadline; it
// returns the combined output and the exit code.
func dockerCLI(t *testing.T, h *testenv.Host, args ...string) (string, int) {
	t.Helper()
	if _, err := exec.LookPath("docker"); err != nil {
		t.Skipf("no docker CLI: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := h.CmdContext(ctx, "env", append([]string{"DOCKER_HOST=unix://" + h.Socket, "DOCKER_CONFIG=" + filepath.Join(h.Dir, "dockercfg"), "docker"}, args...)...)
	// nsenter forks docker into the host's PID namespace: the whole process group goes.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second
	out, err := cmd.CombinedOutput()
	code := 0
	if ctx.Err() != nil {
		t.Errorf("docker %s: no answer within its deadline\n%s", strings.Join(args, " "), out)
		return string(out), -1
	}
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("docker %s: %v", strings.Join(args, " "), err)
	}
	return string(out), code
}

// mustDocker is dockerCLI that fails the test unless docker exits 0.
func mustDocker(t *testing.T, h *testenv.Host, args ...string) string {
	t.Helper()
	out, code := dockerCLI(t, h, args...)
	if code != 0 {
		t.Fatalf("docker %s: exit %d\n%s", strings.Join(args, " "), code, out)
	}
	return out
}

// dockerOnCnet is a shell function `docker` that runs the machine's docker CLI on h's cnet.
func dockerOnCnet(t *testing.T, h *testenv.Host) string {
	t.Helper()
	bin, err := exec.LookPath("docker")
	if err != nil {
		t.Skipf("no docker CLI: %v", err)
	}
	return "docker() { DOCKER_HOST=unix://" + h.Socket + " DOCKER_CONFIG=" + filepath.Join(h.Dir, "dockercfg") + " " + bin + ` "$@"; }; `
}

// TestDockerCLI: the docker CLI (28) on cnet's socket, as a user would use it. It negotiates
// API 1.43 with no error, `docker info` shows cnet, README's busybox image goes out with
// `docker save` and back with `docker load`, and every seed walkthrough of README runs as
// `docker …` commands and prints what README shows for cnet. Then docker's exit codes (125,
// 126, 127, the command's own), `run --rm`, kill/restart/rename, logs -f, `network prune -f`,
// `container prune -f`, and `docker events` seeing a connect.
func TestDockerCLI(t *testing.T) {
	h := testenv.NewHost(t)
	if out := mustDocker(t, h, "version"); !strings.Contains(out, "API version:      1.43 (minimum version 1.24)") || strings.Contains(out, "Error") {
		t.Errorf("docker version:\n%s", out)
	}
	if out := mustDocker(t, h, "info", "--format", "{{.ServerVersion}} {{.OSType}} {{.Swarm.LocalNodeState}}"); strings.TrimSpace(out) != api.EngineVersion+" linux inactive" {
		t.Errorf("docker info: %q", out)
	}
	// cnet's own version and info show the same server.
	if out := h.MustCLI("version", "--format", "{{.Server.APIVersion}} {{.Server.MinAPIVersion}} {{.Client.APIVersion}}"); out != "1.43 1.24 1.43\n" {
		t.Errorf("cnet version: %q", out)
	}
	if out := h.MustCLI("info"); !strings.Contains(out, " Server Version: "+api.EngineVersion+"\n") || !strings.Contains(out, " Containers: 0\n") {
		t.Errorf("cnet info:\n%s", out)
	}
	h.MustRun("sh", "-c", readmeImageScript(t, h))
	saved := filepath.Join(h.Dir, "busybox-saved.tar")
	mustDocker(t, h, "save", "-o", saved, "busybox")
	mustDocker(t, h, "rmi", "busybox")
	if out := mustDocker(t, h, "load", "-i", saved); !strings.Contains(out, "Loaded image: busybox:latest") {
		t.Errorf("docker load: %q", out)
	}
	since := time.Now()
	runReadmeSeeds(t, h, dockerOnCnet(t, h), "docker")
	until := time.Now()
	out := mustDocker(t, h, "events", "--since", since.Format(time.RFC3339Nano), "--until", until.Format(time.RFC3339Nano),
		"--filter", "type=network", "--filter", "event=connect", "--format", "{{.Actor.Attributes.name}}")
	if !strings.Contains(out, "mybridge\n") || !strings.Contains(out, "localnet\n") {
		t.Errorf("docker events saw these connects:\n%s", out)
	}
	// cnet events prints the same events in Docker's line format.
	out = h.MustCLI("events", "--since", since.Format(time.RFC3339Nano), "--until", until.Format(time.RFC3339Nano),
		"--filter", "event=connect", "--filter", "network=mybridge")
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) < 2 ||
		!regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z network connect [0-9a-f]{64} \(container=[0-9a-f]{64}, name=mybridge, type=bridge\)$`).MatchString(lines[0]) {
		t.Errorf("cnet events:\n%s", out)
	}
	if out := mustDocker(t, h, "system", "df", "--format", "{{.Type}} {{.TotalCount}} {{.Active}}"); !strings.Contains(out, "Images 1 1\n") ||
		!regexp.MustCompile(`Containers \d+ \d+\n`).MatchString(out) {
		t.Errorf("docker system df:\n%s", out)
	}

	for _, tt := range []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"run", "--rm", "busybox", "sh", "-c", "echo out; exit 3"}, 3, "out"},
		{[]string{"run", "--rm", "busybox", "nosuch"}, 127, "executable file not found"},
		{[]string{"run", "--rm", "busybox", "/srv/www/index.html"}, 126, "permission denied"},
		{[]string{"run", "--rm", "--network", "nosuch", "busybox", "true"}, 125, "network nosuch not found"},
		{[]string{"run", "--rm", "-i", "busybox", "cat"}, 0, ""},
		{[]string{"run", "--rm", "-t", "busybox", "sh", "-c", "test -t 1 && echo a terminal; exit 5"}, 5, "a terminal"},
	} {
		out, code := dockerCLI(t, h, tt.args...)
		if code != tt.code || !strings.Contains(out, tt.out) {
			t.Errorf("docker %s: exit %d, want %d with %q\n%s", strings.Join(tt.args, " "), code, tt.code, tt.out, out)
		}
	}
	if out, _ := dockerCLI(t, h, "ps", "-a", "--filter", "ancestor=busybox", "--filter", "status=exited", "-q"); out != "" {
		t.Errorf("run --rm left containers: %q", out)
	}
	mustDocker(t, h, "run", "-d", "--name", "lc", "--label", "role=life", "busybox", "sh", "-c", "echo started; sleep 600")
	mustDocker(t, h, "kill", "-s", "TERM", "lc")
	waitFor(t, "lc to exit", func() bool {
		out, _ := dockerCLI(t, h, "ps", "-q", "--filter", "name=^lc$")
		return out == ""
	})
	mustDocker(t, h, "restart", "lc")
	mustDocker(t, h, "rename", "lc", "lc2")
	if out := mustDocker(t, h, "ps", "--filter", "label=role=life", "--format", "{{.Names}} {{.State}}"); out != "lc2 running\n" {
		t.Errorf("after kill, restart and rename: %q", out)
	}
	// A restart is not the exit --rm removes at; a published port is found by ps -f publish.
	mustDocker(t, h, "run", "-d", "--rm", "--name", "rmr", "-p", "8181:80", "busybox", "sleep", "600")
	mustDocker(t, h, "restart", "-t", "1", "rmr")
	if out := mustDocker(t, h, "ps", "--filter", "publish=8181", "--format", "{{.Names}} {{.State}}"); out != "rmr running\n" {
		t.Errorf("a --rm container after restart, by its published port: %q", out)
	}
	mustDocker(t, h, "rm", "-f", "rmr")
	// On a terminal (script(1) gives one, sized with stty), run -it and exec -it pass its size
	// on, with the docker CLI and with cnet's: the container's stty sees it.
	cnet := "cnet() { " + h.Bin + " -H unix://" + h.Socket + ` "$@"; }; `
	for _, tt := range []struct{ cmd, want string }{
		{"stty rows 30 cols 100; docker run --rm -it busybox stty size", "30 100"},
		{"stty rows 31 cols 101; docker exec -it lc2 stty size", "31 101"},
		{"stty rows 32 cols 102; cnet run --rm -it busybox stty size", "32 102"},
		{"stty rows 33 cols 103; cnet exec -it lc2 stty size", "33 103"},
	} {
		out, err := h.Run("script", "-qec", dockerOnCnet(t, h)+cnet+tt.cmd, "/dev/null")
		if err != nil || !strings.Contains(out, tt.want) {
			t.Errorf("%s: %v\n%q, want %q", tt.cmd, err, out, tt.want)
		}
	}
	// logs -f follows until the container stops: it ends once `docker stop` does.
	follow := h.Cmd("sh", "-c", dockerOnCnet(t, h)+"docker logs -f lc2")
	var followed strings.Builder
	follow.Stdout = &followed
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	mustDocker(t, h, "stop", "-t", "1", "lc2")
	done := make(chan error, 1)
	go func() { done <- follow.Wait() }()
	select {
	case err := <-done:
		if err != nil || !strings.Contains(followed.String(), "started\nstarted\n") {
			t.Errorf("logs -f: %v, %q", err, followed.String())
		}
	case <-time.After(30 * time.Second):
		_ = follow.Process.Kill()
		t.Errorf("logs -f did not end when the container stopped")
	}
	if out := mustDocker(t, h, "container", "prune", "-f", "--filter", "label=role=life"); !strings.Contains(out, "Deleted Containers:") {
		t.Errorf("container prune: %q", out)
	}
	mustDocker(t, h, "rm", "-f", "lc2", "c1", "c3", "c2", "a1", "a2", "a3", "web", "web-nasa", "link-alias", "network_container_2", "network_container_1", "mac-nasa", "mac-nasa2")
	if out := mustDocker(t, h, "network", "prune", "-f"); !strings.Contains(out, "Deleted Networks:") || !strings.Contains(out, "localnet") {
		t.Errorf("network prune: %q", out)
	}
	if out := mustDocker(t, h, "network", "ls", "--format", "{{.Name}}"); out != "bridge\nhost\nnone\n" {
		t.Errorf("networks after prune: %q", out)
	}
	mustDocker(t, h, "rmi", "busybox")
}
