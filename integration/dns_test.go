package integration

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	mdns "github.com/miekg/dns"

	"github.com/cnet-dev/cnet/internal/testenv"
)

// TestEmbeddedDNS walks seeds 000 and 001: names, aliases with round robin, and the embedded
// resolver's other answers, through real DNS packets to 127.0.0.11 inside containers.
func TestEmbeddedDNS(t *testing.T) {
	h := testenv.NewHost(t)
	h.MustCLI("network", "create", "localnet")
	c1 := runSleeper(t, h, "c1", "--network", "localnet", "-h", "web1")
	runSleeper(t, h, "c2", "--network", "localnet")

	// Seed 001: nslookup c1 from c2 answers through 127.0.0.11.
	out := h.MustCLI("exec", "c2", "busybox", "nslookup", "c1")
	if !strings.Contains(out, "Server:\t\t127.0.0.11") || !strings.Contains(out, "Name:\tc1\nAddress: 172.18.0.2") {
		t.Errorf("nslookup c1:\n%s", out)
	}
	if got := h.MustCLI("exec", "c2", "busybox", "cat", "/etc/resolv.conf"); got != "nameserver 127.0.0.11\noptions ndots:0\n" {
		t.Errorf("resolv.conf on a user network: %q", got)
	}

	tests := []struct {
		name string
		want []string
	}{
		{"c1", []string{"172.18.0.2"}},
		{"C1", []string{"172.18.0.2"}},
		{"web1", []string{"172.18.0.2"}},
		{c1[:12], []string{"172.18.0.2"}},
		{"c1.localnet", []string{"172.18.0.2"}},
		{"c2", []string{"172.18.0.3"}},
	}
	for _, tt := range tests {
		for _, proto := range []string{"udp", "tcp"} {
			m := query(t, h, "c2", tt.name, mdns.TypeA, proto)
			if got := addrs(m); m.Rcode != mdns.RcodeSuccess || !slices.Equal(got, tt.want) {
				t.Errorf("%s A %s: rcode %s answers %v, want %v", proto, tt.name, mdns.RcodeToString[m.Rcode], got, tt.want)
			}
			if len(m.Answer) > 0 && m.Answer[0].Header().Ttl != 600 {
				t.Errorf("TTL %d, want 600", m.Answer[0].Header().Ttl)
			}
		}
	}
	// A known name without IPv6: NODATA, not NXDOMAIN.
	if m := query(t, h, "c2", "c1", mdns.TypeAAAA, "udp"); m.Rcode != mdns.RcodeSuccess || len(m.Answer) != 0 {
		t.Errorf("AAAA c1: rcode %s, %d answers, want NOERROR with none", mdns.RcodeToString[m.Rcode], len(m.Answer))
	}
	// PTR of a container address.
	m := query(t, h, "c2", "2.0.18.172.in-addr.arpa", mdns.TypePTR, "udp")
	if len(m.Answer) != 1 || m.Answer[0].(*mdns.PTR).Ptr != "c1.localnet." {
		t.Errorf("PTR 172.18.0.2: %v", m.Answer)
	}

	// Seed 000: three containers with one --net-alias answer with three A records, shuffled.
	for _, n := range []string{"a1", "a2", "a3"} {
		runSleeper(t, h, n, "--net", "localnet", "--net-alias", "yceffort")
	}
	firsts := map[string]bool{}
	for range 30 {
		got := addrs(query(t, h, "c2", "yceffort", mdns.TypeA, "udp"))
		sorted := slices.Sorted(slices.Values(got))
		if !slices.Equal(sorted, []string{"172.18.0.4", "172.18.0.5", "172.18.0.6"}) {
			t.Fatalf("yceffort: %v, want the three alias holders", got)
		}
		firsts[got[0]] = true
	}
	if len(firsts) < 2 {
		t.Errorf("30 answers for yceffort always started with %v: no round robin", firsts)
	}

	// The resolver is reachable only inside its sandbox: the host's own 127.0.0.11 has none.
	if out, err := h.Run("busybox", "nslookup", "c1", "127.0.0.11"); err == nil {
		t.Errorf("the host reached a container's resolver:\n%s", out)
	}

	// Names of networks a container has not joined do not resolve for it.
	h.MustCLI("network", "create", "other")
	runSleeper(t, h, "elsewhere", "--net", "other")
	if m := query(t, h, "c2", "elsewhere", mdns.TypeA, "udp"); len(m.Answer) != 0 {
		t.Errorf("c2 resolves elsewhere on a network it has not joined: %v", m.Answer)
	}
	// Connect makes them resolve, disconnect takes them away, at once.
	h.MustCLI("network", "connect", "other", "c2")
	if got := addrs(query(t, h, "c2", "elsewhere", mdns.TypeA, "udp")); !slices.Equal(got, []string{"172.19.0.2"}) {
		t.Errorf("after connect, elsewhere = %v", got)
	}
	h.MustCLI("network", "disconnect", "localnet", "c1")
	if m := query(t, h, "c2", "c1", mdns.TypeA, "udp"); len(m.Answer) != 0 {
		t.Errorf("after disconnecting c1, c1 = %v", m.Answer)
	}
	h.MustCLI("rm", "-f", "a1")
	if got := addrs(query(t, h, "c2", "yceffort", mdns.TypeA, "udp")); len(got) != 2 {
		t.Errorf("after rm a1, yceffort = %v", got)
	}

	// The resolvers live in the daemon: a crashed and restarted daemon serves them again.
	h.KillDaemon()
	h.StartDaemon()
	if got := addrs(query(t, h, "c2", "yceffort", mdns.TypeA, "udp")); len(got) != 2 {
		t.Errorf("after a daemon restart, yceffort = %v", got)
	}
	if got := addrs(query(t, h, "c2", "elsewhere", mdns.TypeA, "tcp")); !slices.Equal(got, []string{"172.19.0.2"}) {
		t.Errorf("after a daemon restart, elsewhere over TCP = %v", got)
	}
}

// TestDNSForwarding shows forwarding to the host's upstream (the test's stub), TCP fallback on a
// truncated answer, SERVFAIL when the upstream is down, and none of it on the default bridge.
func TestDNSForwarding(t *testing.T) {
	h := testenv.NewHost(t)
	h.MustCLI("network", "create", "localnet")
	runSleeper(t, h, "c", "--network", "localnet")

	stub := startStub(t, h, "192.0.2.10", false)
	m := query(t, h, "c", "example.test", mdns.TypeA, "udp")
	if got := addrs(m); !slices.Equal(got, []string{"192.0.2.10"}) || m.Rcode != mdns.RcodeSuccess {
		t.Errorf("forwarded example.test: %s %v", mdns.RcodeToString[m.Rcode], got)
	}
	if seen := stub.seen(); len(seen) == 0 || !strings.HasSuffix(seen[0], " example.test.") {
		t.Errorf("stub saw %v", seen)
	}
	stub.stop()

	big := startStub(t, h, "192.0.2.11", true)
	m = query(t, h, "c", "big.test", mdns.TypeA, "tcp")
	if got := addrs(m); len(got) != 60 {
		t.Errorf("big answer over TCP: %d records, want 60 (the resolver retries upstream over TCP)", len(got))
	}
	sawTCP := false
	for _, q := range big.seen() {
		sawTCP = sawTCP || strings.HasPrefix(q, "tcp ")
	}
	if !sawTCP {
		t.Errorf("the upstream never saw a TCP query: %v", big.seen())
	}
	big.stop()

	if m := query(t, h, "c", "down.test", mdns.TypeA, "udp"); m.Rcode != mdns.RcodeServerFailure {
		t.Errorf("with the upstream down: rcode %s, want SERVFAIL", mdns.RcodeToString[m.Rcode])
	}

	// The default bridge has no embedded resolver: the host's servers are used directly.
	runSleeper(t, h, "plain")
	if got := h.MustCLI("exec", "plain", "busybox", "cat", "/etc/resolv.conf"); strings.Contains(got, "127.0.0.11") {
		t.Errorf("resolv.conf on the default bridge: %q", got)
	}
	// No resolver listens in its sandbox (asked directly, so no query goes anywhere else).
	if out, _, code := h.CLI("exec", "plain", "busybox", "nslookup", "c", "127.0.0.11"); code == 0 {
		t.Errorf("a container on the default bridge got an answer from 127.0.0.11:\n%s", out)
	}
}

// TestDNSBesideOwnServer runs a DNS-port server on 0.0.0.0:53 inside a container: it works,
// and so does the embedded resolver at 127.0.0.11:53 (Docker's reason for its DNAT).
func TestDNSBesideOwnServer(t *testing.T) {
	h := testenv.NewHost(t)
	h.MustCLI("network", "create", "localnet")
	runSleeper(t, h, "c", "--network", "localnet")
	out := filepath.Join(h.Dir, "own-server.out")
	srv := h.Cmd(h.Bin, "-H", "unix://"+h.Socket, "exec", "c", "busybox", "nc", "-l", "-p", "53", "-e", "sh", "-c", "cat > "+out)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the container's own server on :53", func() bool {
		out, _, _ := h.CLI("exec", "c", "busybox", "netstat", "-ltn")
		return strings.Contains(out, ":53 ") // 0.0.0.0:53 or :::53
	})
	if got := addrs(query(t, h, "c", "c", mdns.TypeA, "udp")); !slices.Equal(got, []string{"172.18.0.2"}) {
		t.Errorf("resolver beside the container's own :53 server: %v", got)
	}
	h.MustCLI("exec", "c", "sh", "-c", "echo to-own-server | busybox nc 172.18.0.2 53")
	if err := srv.Wait(); err != nil {
		t.Errorf("the container's own server: %v", err)
	}
	if got, _ := os.ReadFile(out); string(got) != "to-own-server\n" {
		t.Errorf("the container's own server got %q", got)
	}
}

// TestDNSLinks: on a user network, `--link` and `network connect --link` are names only the
// linking container resolves, as Docker's embedded DNS answers them.
func TestDNSLinks(t *testing.T) {
	h := testenv.NewHost(t)
	h.MustCLI("network", "create", "localnet")
	runSleeper(t, h, "db", "--network", "localnet")
	runSleeper(t, h, "app", "--network", "localnet", "--link", "db:database")
	runSleeper(t, h, "other", "--network", "localnet")
	if got := addrs(query(t, h, "app", "database", mdns.TypeA, "udp")); !slices.Equal(got, []string{"172.18.0.2"}) {
		t.Errorf("app resolves its link alias to %v", got)
	}
	if m := query(t, h, "other", "database", mdns.TypeA, "udp"); len(m.Answer) != 0 {
		t.Errorf("another container resolves app's link alias: %v", m.Answer)
	}
	h.MustCLI("network", "create", "second")
	h.MustCLI("network", "connect", "--link", "db:store", "second", "other")
	if got := addrs(query(t, h, "other", "store", mdns.TypeA, "udp")); !slices.Equal(got, []string{"172.18.0.2"}) {
		t.Errorf("other resolves the link added on connect to %v", got)
	}
}
