package cluster_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cnet-dev/cnet/internal/cluster"
	"github.com/cnet-dev/cnet/internal/errdefs"
)

// These tests need neither root nor etcd: they are the flags a user types.

func TestParseStoreURL(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
		err  string
	}{
		{"etcd://10.0.0.1:2379", []string{"10.0.0.1:2379"}, ""},
		{"etcd://a:2379, b:2379/,c:2379", []string{"a:2379", "b:2379", "c:2379"}, ""},
		{"etcd://[fd00::1]:2379", []string{"[fd00::1]:2379"}, ""},
		{"etcd://a:2379,,", []string{"a:2379"}, ""},
		{"consul://a:8500", nil, "etcd is the only cluster store"},
		{"10.0.0.1:2379", nil, "want etcd://HOST:PORT"},
		{"etcd://", nil, "no etcd member given"},
		{"etcd://a", nil, `member "a": want HOST:PORT`},
		{"etcd://a:2379,b", nil, `member "b"`},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := cluster.ParseStoreURL(tc.in)
			if tc.err != "" {
				if !errdefs.Is(err, errdefs.KindInvalid) || !strings.Contains(err.Error(), tc.err) {
					t.Errorf("error %v, want Invalid mentioning %q", err, tc.err)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Errorf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// writeCert writes a self-signed certificate and its key as PEM files.
func writeCert(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "etcd-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

func TestApplyOptions(t *testing.T) {
	dir := t.TempDir()
	cert, key := writeCert(t, dir)
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")

	for _, tc := range []struct {
		name  string
		opts  []string
		err   string
		check func(t *testing.T, c cluster.Config)
	}{
		{"none", nil, "", func(t *testing.T, c cluster.Config) {
			if c.TLS != nil || c.TTL != 0 || c.Cooldown != 0 {
				t.Errorf("no options changed the config: %+v", c)
			}
		}},
		{"ttl in seconds", []string{"discovery.ttl=5"}, "", func(t *testing.T, c cluster.Config) {
			if c.TTL != 5*time.Second {
				t.Errorf("TTL %s, want 5s", c.TTL)
			}
		}},
		{"ttl and cooldown as durations", []string{"discovery.ttl=1500ms", "address.cooldown=2m"}, "", func(t *testing.T, c cluster.Config) {
			if c.TTL != 1500*time.Millisecond || c.Cooldown != 2*time.Minute {
				t.Errorf("TTL %s cooldown %s, want 1.5s and 2m", c.TTL, c.Cooldown)
			}
		}},
		{"ttl zero", []string{"discovery.ttl=0"}, "at least 1", nil},
		{"ttl below a second", []string{"discovery.ttl=500ms"}, "discovery.ttl", nil},
		{"cooldown not a number", []string{"address.cooldown=soon"}, `address.cooldown="soon"`, nil},
		{"unknown key", []string{"kv.path=/docker"}, `unknown --cluster-store-opt "kv.path"`, nil},
		{"no value", []string{"discovery.ttl"}, "want KEY=VALUE", nil},
		{"ca only", []string{"kv.cacertfile=" + cert}, "", func(t *testing.T, c cluster.Config) {
			if c.TLS == nil || c.TLS.RootCAs == nil || len(c.TLS.Certificates) != 0 {
				t.Errorf("TLS %+v, want the CA as the only root and no client certificate", c.TLS)
			}
		}},
		{"client certificate", []string{"kv.cacertfile=" + cert, "kv.certfile=" + cert, "kv.keyfile=" + key}, "", func(t *testing.T, c cluster.Config) {
			if c.TLS == nil || len(c.TLS.Certificates) != 1 || c.TLS.RootCAs == nil {
				t.Errorf("TLS %+v, want a root CA and one client certificate", c.TLS)
			}
		}},
		{"cert without key", []string{"kv.certfile=" + cert}, "go together", nil},
		{"key without cert", []string{"kv.keyfile=" + key}, "go together", nil},
		{"missing ca", []string{"kv.cacertfile=" + missing}, "reading kv.cacertfile", nil},
		{"ca not pem", []string{"kv.cacertfile=" + notPEM}, "holds no PEM certificate", nil},
		{"key does not match", []string{"kv.certfile=" + cert, "kv.keyfile=" + notPEM}, "loading kv.certfile and kv.keyfile", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c cluster.Config
			err := cluster.ApplyOptions(&c, tc.opts)
			if tc.err != "" {
				if !errdefs.Is(err, errdefs.KindInvalid) || !strings.Contains(err.Error(), tc.err) {
					t.Errorf("error %v, want Invalid mentioning %q", err, tc.err)
				}
				if c.TLS != nil {
					t.Error("a refused option set TLS anyway")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, c)
		})
	}
}

func TestResolveAdvertise(t *testing.T) {
	for _, tc := range []struct {
		in, want, err string
	}{
		{"192.168.1.11", "192.168.1.11", ""},
		{"192.168.1.11:2376", "192.168.1.11", ""}, // Docker's form; the port was its API's
		{"fd00::11", "", "IPv4 underlays only"},
		{"[fd00::11]:2376", "", "IPv4 underlays only"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := cluster.ResolveAdvertise(tc.in)
			if tc.err != "" {
				if !errdefs.Is(err, errdefs.KindInvalid) || !strings.Contains(err.Error(), tc.err) {
					t.Errorf("error %v, want Invalid mentioning %q", err, tc.err)
				}
				return
			}
			if err != nil || got != netip.MustParseAddr(tc.want) {
				t.Errorf("got %v, %v; want %s", got, err, tc.want)
			}
		})
	}
}

// TestHostID: a host keeps its cluster ID across restarts (its address claims stay its own),
// and a damaged file gives a new one rather than a bad ID.
func TestHostID(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "root")
	id, err := cluster.HostID(dir)
	if err != nil || len(id) != 64 {
		t.Fatalf("HostID = %q, %v", id, err)
	}
	again, err := cluster.HostID(dir)
	if err != nil || again != id {
		t.Errorf("second HostID = %q, %v; want the same %q", again, err, id)
	}
	if err := os.WriteFile(filepath.Join(dir, "host-id"), []byte("short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if fresh, err := cluster.HostID(dir); err != nil || len(fresh) != 64 || fresh == id {
		t.Errorf("HostID over a damaged file = %q, %v", fresh, err)
	}
}

// TestOpenNeedsAdvertise: joining a cluster without saying where other hosts reach this one
// is refused before anything is dialled.
func TestOpenNeedsAdvertise(t *testing.T) {
	_, err := cluster.Open(cluster.Config{Endpoints: []string{"unix:///nonexistent"}, HostID: hostID("x")})
	if !errdefs.Is(err, errdefs.KindInvalid) || !strings.Contains(err.Error(), "--cluster-advertise") {
		t.Errorf("Open without a VTEP: %v, want Invalid naming --cluster-advertise", err)
	}
}
