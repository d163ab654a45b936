package integration

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	mdns "github.com/miekg/dns"

	"github.com/cnet-dev/cnet/internal/testenv"
)

// TestLinks walks seed 004's --link part: /etc/hosts lines "IP alias id12 name", reaching the
// target by its alias, Docker's link environment, and the line following the target's new
// address after it restarts.
func TestLinks(t *testing.T) {
	h := testenv.NewHost(t)
	www := filepath.Join(h.Dir, "www")
	if err := os.MkdirAll(www, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(www, "index.html"), []byte("<html><body><h1>It works!</h1></body></html>\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	webID := strings.TrimSpace(h.MustCLI("run", "--rootfs", "/", "-d", "--name", "web-nasa", "--expose", "80", "-e", "SECRET=x",
		"busybox", "httpd", "-f", "-p", "80", "-h", www))
	runSleeper(t, h, "link-alias", "--link", "web-nasa:nasa1515", "--add-host", "db:10.1.2.3")
	selfID := strings.TrimSpace(h.MustCLI("inspect", "-f", "{{.Id}}", "link-alias"))

	hosts := h.MustCLI("exec", "link-alias", "busybox", "cat", "/etc/hosts")
	want := "ff02::2\tip6-allrouters\n10.1.2.3\tdb\n172.17.0.2\tnasa1515 " + webID[:12] + " web-nasa\n172.17.0.3\t" + selfID[:12] + "\n"
	if !strings.HasSuffix(hosts, want) {
		t.Errorf("/etc/hosts:\n%s\nwant it to end with:\n%s", hosts, want)
	}
	page := h.MustCLI("exec", "link-alias", "sh", "-c", `printf 'GET / HTTP/1.0\r\n\r\n' | busybox nc nasa1515 80`)
	if !strings.Contains(page, "It works!") {
		t.Errorf("curl nasa1515 through the link: %q", page)
	}
	env := h.MustCLI("exec", "link-alias", "busybox", "env")
	for _, kv := range []string{
		"NASA1515_NAME=/link-alias/nasa1515",
		"NASA1515_PORT=tcp://172.17.0.2:80",
		"NASA1515_PORT_80_TCP=tcp://172.17.0.2:80",
		"NASA1515_PORT_80_TCP_ADDR=172.17.0.2",
		"NASA1515_PORT_80_TCP_PORT=80",
		"NASA1515_PORT_80_TCP_PROTO=tcp",
		"NASA1515_ENV_SECRET=x",
	} {
		if !strings.Contains(env, kv+"\n") {
			t.Errorf("link environment lacks %s:\n%s", kv, env)
		}
	}
	if got := strings.TrimSpace(h.MustCLI("inspect", "-f", "{{.HostConfig.Links}}", "link-alias")); got != "[/web-nasa:/link-alias/nasa1515]" {
		t.Errorf("inspect links = %q", got)
	}

	// The target restarts with another address (a newcomer took its old one).
	h.MustCLI("stop", "-t", "1", "web-nasa")
	runSleeper(t, h, "newcomer")
	h.MustCLI("start", "web-nasa")
	newIP := ipOn(t, h, "web-nasa", "bridge")
	if newIP == "172.17.0.2" {
		t.Fatalf("web-nasa kept 172.17.0.2; the test needs it to move")
	}
	if hosts := h.MustCLI("exec", "link-alias", "busybox", "cat", "/etc/hosts"); !strings.Contains(hosts, newIP+"\tnasa1515 ") {
		t.Errorf("after the target moved to %s, /etc/hosts:\n%s", newIP, hosts)
	}

	// Refusals: an unknown target; a stopped target at start.
	if _, errOut, code := h.CLI("run", "--rootfs", "/", "-d", "--link", "nosuch:x", "busybox", "sleep", "1"); code == 0 || !strings.Contains(errOut, "nosuch") {
		t.Errorf("link to an unknown container: exit %d %q", code, errOut)
	}
	h.MustCLI("stop", "-t", "0", "newcomer")
	_, errOut, code := h.CLI("run", "--rootfs", "/", "-d", "--name", "late", "--link", "newcomer:n", "busybox", "sleep", "1")
	if code == 0 || !strings.Contains(errOut, "Cannot link to a non running container: /newcomer AS /late/n") {
		t.Errorf("link to a stopped container: exit %d %q", code, errOut)
	}
}

func TestDNSFlags(t *testing.T) {
	h := testenv.NewHost(t)
	out := h.MustCLI("run", "--rootfs", "/", "--rm", "--dns", "192.0.2.53", "--dns-search", "example.test", "--dns-option", "ndots:3",
		"busybox", "cat", "/etc/resolv.conf")
	if out != "nameserver 192.0.2.53\nsearch example.test\noptions ndots:3\n" {
		t.Errorf("resolv.conf with --dns flags:\n%s", out)
	}
	if _, errOut, code := h.CLI("run", "--rootfs", "/", "--rm", "--dns", "not-an-ip", "busybox", "true"); code == 0 || !strings.Contains(errOut, "--dns") {
		t.Errorf("bad --dns: exit %d %q", code, errOut)
	}
	if _, errOut, code := h.CLI("run", "--rootfs", "/", "--rm", "--add-host", "nocolon", "busybox", "true"); code == 0 || !strings.Contains(errOut, "--add-host") {
		t.Errorf("bad --add-host: exit %d %q", code, errOut)
	}
	if got := h.MustCLI("run", "--rootfs", "/", "--rm", "-h", "web", "--domainname", "example.test", "busybox", "tail", "-n", "1", "/etc/hosts"); !strings.HasSuffix(got, "\tweb.example.test web\n") {
		t.Errorf("hosts line with a domain name: %q", got)
	}
}

// TestLinkCycleConcurrentStart is the regression test for a deadlock: `network connect --link`
// lets two containers link to each other, and starting both at once used to leave each start
// holding its own container's lock while waiting for the other's. Both are started together
// through the API, pass after pass; every call has the harness's deadline, so a hang fails
// the test with the daemon's goroutines. Links on user networks need no running target (as in
// Docker), so every start succeeds, and each resolves the other by its link alias.
func TestLinkCycleConcurrentStart(t *testing.T) {
	h := testenv.NewHost(t)
	h.MustCLI("network", "create", "n1")
	h.MustCLI("network", "create", "n2")
	runSleeper(t, h, "a", "--network", "n1")
	runSleeper(t, h, "b", "--network", "n1")
	h.MustCLI("network", "connect", "--link", "b:bb", "n2", "a")
	h.MustCLI("network", "connect", "--link", "a:aa", "n2", "b")
	cl := h.API()
	zero := 0
	const passes = 15
	for pass := range passes {
		for _, name := range []string{"a", "b"} {
			if err := cl.ContainerStop(context.Background(), name, &zero); err != nil {
				t.Fatalf("pass %d: stopping %s: %v", pass, name, err)
			}
		}
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, name := range []string{"a", "b"} {
			wg.Go(func() { errs[i] = cl.ContainerStart(context.Background(), name) })
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatalf("pass %d: starting both at once: %v", pass, err)
		}
	}
	for _, pair := range [][3]string{{"a", "bb", "b"}, {"b", "aa", "a"}} {
		// The target is on n1 and n2: either address is its own (which one is the resolver's
		// business, tested in the DNS tests).
		want := []string{ipOn(t, h, pair[2], "n1"), ipOn(t, h, pair[2], "n2")}
		if got := addrs(query(t, h, pair[0], pair[1], mdns.TypeA, "udp")); len(got) != 1 || !slices.Contains(want, got[0]) {
			t.Errorf("%s resolves its link alias %s to %v, want one of %s's addresses %v", pair[0], pair[1], got, pair[2], want)
		}
	}
}
