package cluster_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/cnet-dev/cnet/internal/cluster"
)

// The tests run against a real etcd, because what the package promises (compare-and-swap
// claims, leases that expire, watches that resume after a compaction) is etcd's behaviour,
// which a fake would only imitate. The etcd runs in a network namespace of its own and serves
// clients on a UNIX socket in a temporary directory: the test process never opens a network
// socket in the machine's namespace, and nothing of the test outlives it.

const etcdBin = "/usr/bin/etcd"

// keyPrefix is the package's layout root, read directly by the tests to check claims.
const keyPrefix = "/cnet/v1/"

// etcdServer is one single-member etcd in a throwaway network namespace.
type etcdServer struct {
	dir  string
	cmd  *exec.Cmd
	done chan struct{}
	log  *os.File
	tls  *tlsFiles // nil: plain
}

// endpoint is the client URL of the server's socket, as cluster.Config.Endpoints takes it.
func (e *etcdServer) endpoint() string {
	if e.tls != nil {
		return "unixs://" + filepath.Join(e.dir, "etcd.sock:0")
	}
	return "unix://" + filepath.Join(e.dir, "etcd.sock:0")
}

// startEtcd starts an etcd whose data and socket live in dir and waits until it answers.
func startEtcd(dir string) (*etcdServer, error) { return startEtcdTLS(dir, nil) }

// startEtcdTLS is startEtcd serving clients over TLS (with client certificates) when tf is
// set.
func startEtcdTLS(dir string, tf *tlsFiles) (*etcdServer, error) {
	logf, err := os.Create(filepath.Join(dir, "etcd.log"))
	if err != nil {
		return nil, err
	}
	// The socket path is relative to the working directory: etcd 3.4 takes the URL's host
	// part as the file name, port included.
	scheme, secure := "unix", ""
	if tf != nil {
		scheme = "unixs"
		secure = ` --cert-file ` + tf.serverCert + ` --key-file ` + tf.serverKey + ` --client-cert-auth --trusted-ca-file ` + tf.ca
	}
	script := `ip link set lo up && exec ` + etcdBin + ` --name t --data-dir data` + secure +
		` --listen-client-urls ` + scheme + `://etcd.sock:0 --advertise-client-urls ` + scheme + `://etcd.sock:0` +
		` --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380` +
		` --initial-cluster t=http://127.0.0.1:2380 --heartbeat-interval 50 --election-timeout 500` +
		` --snapshot-count 100000`
	cmd := exec.Command("unshare", "--net", "--fork", "--kill-child", "sh", "-c", script)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logf, logf
	// Killed with the test binary even if it dies without cleaning up.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting etcd: %w", err)
	}
	e := &etcdServer{dir: dir, cmd: cmd, done: make(chan struct{}), log: logf, tls: tf}
	go func() { _ = cmd.Wait(); close(e.done) }()
	if err := e.waitHealthy(15 * time.Second); err != nil {
		e.kill()
		b, _ := os.ReadFile(logf.Name())
		return nil, fmt.Errorf("%w\netcd's log:\n%s", err, b)
	}
	return e, nil
}

func (e *etcdServer) waitHealthy(limit time.Duration) error {
	cfg := clientv3.Config{Endpoints: []string{e.endpoint()}, DialTimeout: 2 * time.Second, Logger: zap.NewNop()}
	if e.tls != nil {
		c := cluster.Config{}
		if err := cluster.ApplyOptions(&c, e.tls.opts()); err != nil {
			return err
		}
		cfg.TLS = c.TLS
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		return err
	}
	defer cli.Close()
	deadline := time.Now().Add(limit)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		_, err := cli.Get(ctx, "health")
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-e.done:
			return fmt.Errorf("etcd exited before it answered")
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("etcd did not answer within %s: %w", limit, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill stops the server at once (SIGKILL to unshare, whose --kill-child takes etcd along).
func (e *etcdServer) kill() {
	_ = e.cmd.Process.Kill()
	<-e.done
	e.log.Close()
}

func newRawClient(endpoint string) (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
}

// The package's shared etcd, started by the first test that needs it and stopped by
// TestMain: one start (about a second, most of it the election) instead of one per test.
var (
	sharedOnce sync.Once
	shared     *etcdServer
	sharedErr  error
	sharedDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if shared != nil {
		shared.kill()
	}
	if sharedDir != "" {
		os.RemoveAll(sharedDir)
	}
	os.Exit(code)
}

// skipUnlessEtcd skips a test that needs a real etcd where the machine cannot give one.
func skipUnlessEtcd(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: etcd runs in a network namespace of its own")
	}
	if _, err := os.Stat(etcdBin); err != nil {
		t.Skipf("needs etcd at %s (Debian's etcd-server package)", etcdBin)
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("needs unshare (util-linux)")
	}
}

// env is one test's view of the shared etcd: a client of its own, the store emptied of what
// earlier tests left.
type env struct {
	t        *testing.T
	endpoint string
	raw      *clientv3.Client
}

func newEnv(t *testing.T) *env {
	t.Helper()
	skipUnlessEtcd(t)
	sharedOnce.Do(func() {
		sharedDir, sharedErr = os.MkdirTemp("", "cnet-cluster-etcd-")
		if sharedErr == nil {
			shared, sharedErr = startEtcd(sharedDir)
		}
	})
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	raw, err := newRawClient(shared.endpoint())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	e := &env{t: t, endpoint: shared.endpoint(), raw: raw}
	if _, err := raw.Delete(e.ctx(), keyPrefix, clientv3.WithPrefix()); err != nil {
		t.Fatalf("emptying the store: %v", err)
	}
	return e
}

func (e *env) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	e.t.Cleanup(cancel)
	return ctx
}

// The two hosts the tests play. VTEPs are only data here.
var hosts = []struct{ name, vtep string }{
	{"host1", "192.168.1.11"},
	{"host2", "172.31.1.12"},
}

func hostID(name string) string {
	h := sha256.Sum256([]byte(name))
	return hex.EncodeToString(h[:])
}

// config is host i's configuration with short timings, so that leases and cooldowns run out
// within a test.
func config(endpoint string, i int) cluster.Config {
	return cluster.Config{
		Endpoints: []string{endpoint},
		HostID:    hostID(hosts[i].name),
		HostName:  hosts[i].name,
		VTEP:      netip.MustParseAddr(hosts[i].vtep),
		TTL:       2 * time.Second,
		OpTimeout: 2 * time.Second,
		Cooldown:  2 * time.Second,
	}
}

// store opens host i's Store (not started), closed when the test ends.
func (e *env) store(i int) *cluster.Store {
	return openStore(e.t, config(e.endpoint, i))
}

func openStore(t *testing.T, cfg cluster.Config) *cluster.Store {
	t.Helper()
	s, err := cluster.Open(cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// eventually polls cond until it holds or limit passes; what is waited for is asynchronous
// (a watch event, a lease running out), so a fixed sleep would be either flaky or slow.
func eventually(t *testing.T, limit time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > limit {
			t.Fatalf("%s: not within %s", what, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

// get reads one key directly; ok is false when it does not exist.
func (e *env) get(key string) (value string, lease int64, ok bool) {
	e.t.Helper()
	resp, err := e.raw.Get(e.ctx(), key)
	if err != nil {
		e.t.Fatalf("reading %s: %v", key, err)
	}
	if len(resp.Kvs) == 0 {
		return "", 0, false
	}
	return string(resp.Kvs[0].Value), resp.Kvs[0].Lease, true
}

// keys lists the keys under prefix.
func (e *env) keys(prefix string) []string {
	e.t.Helper()
	resp, err := e.raw.Get(e.ctx(), prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		e.t.Fatalf("listing %s: %v", prefix, err)
	}
	var out []string
	for _, kv := range resp.Kvs {
		out = append(out, string(kv.Key))
	}
	return out
}
