package testenv

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// etcdBin is Debian's etcd (package etcd-server, 3.4). The tests run their own members in
// namespaces of their own; the package's service, if any runs, listens in the machine's
// namespace, which nothing a test makes can reach.
const etcdBin = "/usr/bin/etcd"

// Member is one etcd member of a Cluster: a bare host on the store subnet running etcd with
// its data directory and log under the host's private directory.
type Member struct {
	*BareHost
	Name   string // etcd1, etcd2, ...
	IP     string // 10.99.0.11, ...
	c      *Cluster
	cmd    *exec.Cmd     // nsenter; etcd is its child in the member's PID namespace
	exited chan struct{} // closed when cmd has been reaped
	killed bool          // by KillMember: not running is what the test wants
}

// ClientURL returns the member's client URL (http://IP:2379).
func (m *Member) ClientURL() string { return "http://" + m.IP + ":2379" }

// Running reports whether the member's etcd is running (started and not killed).
func (m *Member) Running() bool {
	if m.cmd == nil {
		return false
	}
	select {
	case <-m.exited:
		return false
	default:
		return true
	}
}

// Log returns what the member's etcd logged so far, every run of it.
func (m *Member) Log() string {
	data, _ := os.ReadFile(filepath.Join(m.Dir, "etcd.log"))
	return string(data)
}

// start starts etcd in the member with state "new" (a fresh cluster) or "existing" (a
// restart with the data directory it had). Short heartbeat and election settings make a
// leader within a second and notice a dead one within half a second.
func (m *Member) start(state string) {
	t := m.c.t
	t.Helper()
	var initial []string
	for _, x := range m.c.Members {
		initial = append(initial, x.Name+"=http://"+x.IP+":2380")
	}
	logf, err := os.OpenFile(filepath.Join(m.Dir, "etcd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	m.cmd = m.Cmd(etcdBin, "--name", m.Name, "--data-dir", filepath.Join(m.Dir, "data"),
		"--listen-client-urls", m.ClientURL(), "--advertise-client-urls", m.ClientURL(),
		"--listen-peer-urls", "http://"+m.IP+":2380", "--initial-advertise-peer-urls", "http://"+m.IP+":2380",
		"--initial-cluster", strings.Join(initial, ","), "--initial-cluster-token", m.c.token,
		"--initial-cluster-state", state, "--heartbeat-interval", "50", "--election-timeout", "500",
		"--logger", "zap", "--log-outputs", "stderr")
	m.cmd.Stdout, m.cmd.Stderr = logf, logf
	// Only the flags configure the member: no ETCD_* variable of the machine's (Debian's
	// /etc/default/etcd is the service's, but a shell may export them).
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ETCD_") && !strings.HasPrefix(kv, "ETCDCTL_") {
			m.cmd.Env = append(m.cmd.Env, kv)
		}
	}
	if err := m.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", m.Name, err)
	}
	exited := make(chan struct{})
	m.exited = exited
	go func(cmd *exec.Cmd) { _ = cmd.Wait(); close(exited) }(m.cmd)
}

// KillMember kills etcd member i (0-based) with SIGKILL and waits for it to be gone. Its
// network namespace stays: its address stops answering (connections are refused).
func (c *Cluster) KillMember(i int) {
	c.t.Helper()
	m := c.Members[i]
	if !m.Running() {
		c.t.Fatalf("KillMember(%d): %s is not running", i, m.Name)
	}
	pid, err := childPid(m.cmd.Process.Pid, "", 5*time.Second)
	if err != nil {
		c.t.Fatalf("KillMember(%d): %v", i, err)
	}
	m.killed = true
	_ = syscall.Kill(pid, syscall.SIGKILL)
	select {
	case <-m.exited:
	case <-time.After(10 * time.Second):
		c.t.Fatalf("KillMember(%d): %s did not die within 10s of SIGKILL", i, m.Name)
	}
}

// StartMember starts etcd member i again with the data directory it had, and waits until
// the whole cluster is healthy again.
func (c *Cluster) StartMember(i int) {
	c.t.Helper()
	m := c.Members[i]
	if m.Running() {
		c.t.Fatalf("StartMember(%d): %s is running", i, m.Name)
	}
	m.killed = false
	m.start("existing")
	c.WaitHealthy(20 * time.Second)
}

// WaitHealthy waits until every running member answers /health with "true" (it has a leader
// and serves a read), failing the test with the members' logs after timeout.
func (c *Cluster) WaitHealthy(timeout time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var sick []string
		for _, m := range c.Members {
			if !m.Running() {
				if m.cmd != nil && !m.killed {
					sick = append(sick, m.Name+" exited")
				}
				continue
			}
			out, err := c.Router.RunTimeout(3*time.Second, "busybox", "wget", "-qO-", m.ClientURL()+"/health")
			if err != nil || !strings.Contains(out, `"health":"true"`) {
				sick = append(sick, fmt.Sprintf("%s: %v %s", m.Name, err, strings.TrimSpace(out)))
			}
		}
		if len(sick) == 0 {
			return
		}
		if time.Now().After(deadline) {
			var logs strings.Builder
			for _, m := range c.Members {
				fmt.Fprintf(&logs, "\n--- %s (%s) log:\n%s", m.Name, m.IP, m.Log())
			}
			c.t.Fatalf("etcd not healthy within %s:\n  %s%s", timeout, strings.Join(sick, "\n  "), logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Etcd posts req (marshalled to JSON) to the etcd v3 HTTP/JSON gateway at path (e.g.
// "/v3/kv/range") of the first running member that answers, from the router, and decodes
// the answer into resp (if not nil). Keys and values in the gateway's JSON are base64.
func (c *Cluster) Etcd(path string, req, resp any) error {
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	var errs []error
	for _, m := range c.Members {
		if !m.Running() {
			continue
		}
		out, err := c.Router.RunTimeout(5*time.Second, "busybox", "wget", "-qO-",
			"--header", "Content-Type: application/json", "--post-data", string(body), m.ClientURL()+path)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %v: %s", m.Name, err, strings.TrimSpace(out)))
			continue
		}
		if resp == nil {
			return nil
		}
		if err := json.Unmarshal([]byte(out), resp); err != nil {
			return fmt.Errorf("%s%s: %v in %q", m.Name, path, err, out)
		}
		return nil
	}
	if len(errs) == 0 {
		return errors.New("no etcd member is running")
	}
	return fmt.Errorf("POST %s to etcd: %w", path, errors.Join(errs...))
}

// EtcdGet returns every key under prefix and its value, failing the test if etcd does not
// answer.
func (c *Cluster) EtcdGet(prefix string) map[string]string {
	c.t.Helper()
	var resp struct {
		KVs []struct {
			Key   []byte `json:"key"` // encoding/json decodes base64 into []byte
			Value []byte `json:"value"`
		} `json:"kvs"`
	}
	req := map[string]string{"key": b64(prefix), "range_end": b64(prefixEnd(prefix))}
	if err := c.Etcd("/v3/kv/range", req, &resp); err != nil {
		c.t.Fatalf("reading %q from etcd: %v", prefix, err)
	}
	kvs := map[string]string{}
	for _, kv := range resp.KVs {
		kvs[string(kv.Key)] = string(kv.Value)
	}
	return kvs
}

// EtcdPut writes key=value, failing the test if etcd does not take it.
func (c *Cluster) EtcdPut(key, value string) {
	c.t.Helper()
	if err := c.Etcd("/v3/kv/put", map[string]string{"key": b64(key), "value": b64(value)}, nil); err != nil {
		c.t.Fatalf("writing %q to etcd: %v", key, err)
	}
}

// EtcdMembers returns the names of the cluster's members as etcd lists them.
func (c *Cluster) EtcdMembers() []string {
	c.t.Helper()
	var resp struct {
		Members []struct {
			Name string `json:"name"`
		} `json:"members"`
	}
	if err := c.Etcd("/v3/cluster/member/list", map[string]string{}, &resp); err != nil {
		c.t.Fatalf("listing etcd's members: %v", err)
	}
	var names []string
	for _, m := range resp.Members {
		names = append(names, m.Name)
	}
	return names
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// prefixEnd is the range end that makes a range request cover every key starting with
// prefix (etcd's clientv3.GetPrefixRangeEnd); "\x00" (every key) for an empty prefix.
func prefixEnd(prefix string) string {
	end := []byte(prefix)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return string(end[:i+1])
		}
	}
	return "\x00"
}
