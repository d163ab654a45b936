package integration

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cnet-dev/cnet/internal/testenv"
)

// hostGet connects from the host's namespace to addr, fetches / over HTTP/1.0 and reports the
// connection's local and remote addresses as the process sees them, and the status line.
func hostGet(t *testing.T, h *testenv.Host, addr string) (local, remote, status string, err error) {
	t.Helper()
	inNetNS(t, h.NetNS(), func() {
		var c net.Conn
		if c, err = net.DialTimeout("tcp4", addr, 2*time.Second); err != nil {
			return
		}
		defer c.Close()
		local, remote = c.LocalAddr().(*net.TCPAddr).IP.String(), c.RemoteAddr().String()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err = fmt.Fprintf(c, "GET / HTTP/1.0\r\n\r\n"); err != nil {
			return
		}
		status, err = bufio.NewReader(c).ReadString('\n')
		status = strings.TrimSpace(status)
	})
	return local, remote, status, err
}

// TestHostConnectTranslation: the host's own TCP connections to a published port are
// translated at connect() while the daemon runs: the process connected to 127.0.0.1:5000 and
// getpeername says so, but the connection is the bridge's address to the container's (no NAT
// on its packets). With the daemon stopped or killed, or started with
// --no-connect-translation, the same connection goes through NAT (its local address stays
// 127.0.0.1) and still works; a restarted daemon translates again the ports of containers
// that kept running; a removed container's port is translated no more.
func TestHostConnectTranslation(t *testing.T) {
	h := testenv.NewHost(t)
	www := filepath.Join(h.Dir, "www")
	if err := os.MkdirAll(www, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(www, "index.html"), []byte("hi\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h.MustCLI("network", "create", "--subnet", "10.77.0.0/24", "front")
	h.MustCLI("run", "--rootfs", "/", "-d", "--name", "web", "--network", "front", "-p", "5000:80", "-p", "127.0.0.1:5001:80",
		"busybox", "httpd", "-f", "-p", "80", "-h", www)
	waitFor(t, "httpd", func() bool { _, _, s, err := hostGet(t, h, "127.0.0.1:5000"); return err == nil && s != "" })

	type want struct{ addr, local string }
	translated := []want{{"127.0.0.1:5000", "10.77.0.1"}, {"127.0.0.2:5000", "10.77.0.1"}, {"127.0.0.1:5001", "10.77.0.1"}}
	natted := []want{{"127.0.0.1:5000", "127.0.0.1"}, {"127.0.0.1:5001", "127.0.0.1"}}
	check := func(when string, cases []want) {
		t.Helper()
		for _, w := range cases {
			local, remote, status, err := hostGet(t, h, w.addr)
			if err != nil || !strings.HasSuffix(status, " 200 OK") {
				t.Errorf("%s: GET %s: %q, %v", when, w.addr, status, err)
				continue
			}
			if local != w.local || remote != w.addr {
				t.Errorf("%s: connection to %s is %s -> %s, want %s -> %s", when, w.addr, local, remote, w.local, w.addr)
			}
		}
	}
	check("daemon running", translated)

	h.StopDaemon()
	check("daemon stopped", natted)

	// A crash takes the translation with it too: nothing stale outlives the daemon.
	h.StartDaemon()
	check("daemon started again", translated)
	h.KillDaemon()
	check("daemon killed", natted)

	h.StartDaemon("--no-connect-translation")
	check("--no-connect-translation", natted)
	h.StopDaemon()

	h.StartDaemon()
	check("daemon restarted", translated)

	h.MustCLI("rm", "-f", "web")
	if _, _, _, err := hostGet(t, h, "127.0.0.1:5000"); err == nil {
		t.Error("127.0.0.1:5000 still answers after rm -f web")
	}
}
