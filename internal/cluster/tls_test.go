package cluster_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cnet-dev/cnet/internal/cluster"
	"github.com/cnet-dev/cnet/internal/errdefs"
)

// tlsFiles are a CA, a server certificate for etcd and a client certificate for cnet, as
// PEM files in a test's directory.
type tlsFiles struct {
	ca, serverCert, serverKey, clientCert, clientKey string
}

// opts are the --cluster-store-opt settings that use the client certificate.
func (f *tlsFiles) opts() []string {
	return []string{"kv.cacertfile=" + f.ca, "kv.certfile=" + f.clientCert, "kv.keyfile=" + f.clientKey}
}

// makeTLSFiles writes a fresh CA and a server and a client certificate signed by it.
func makeTLSFiles(t *testing.T, dir string) *tlsFiles {
	t.Helper()
	write := func(name, typ string, der []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	caKey := key()
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "cnet test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	f := &tlsFiles{ca: write("ca.pem", "CERTIFICATE", caDER)}
	for i, who := range []string{"server", "client"} {
		k := key()
		c := &x509.Certificate{SerialNumber: big.NewInt(int64(i + 2)), Subject: pkix.Name{CommonName: who},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage:    x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
			DNSNames:    []string{"localhost", "etcd.sock"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
		der, err := x509.CreateCertificate(rand.Reader, c, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kd, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		cert, keyPath := write(who+".pem", "CERTIFICATE", der), write(who+"-key.pem", "EC PRIVATE KEY", kd)
		if who == "server" {
			f.serverCert, f.serverKey = cert, keyPath
		} else {
			f.clientCert, f.clientKey = cert, keyPath
		}
	}
	return f
}

// TestTLS: with --cluster-store-opt kv.cacertfile, kv.certfile and kv.keyfile, the store is
// reached over TLS with a client certificate and works as over plain connections; without
// the client certificate, an etcd that requires one refuses, and the operation fails with the
// store's name instead of hanging.
func TestTLS(t *testing.T) {
	skipUnlessEtcd(t)
	dir := t.TempDir()
	tf := makeTLSFiles(t, dir)
	srv, err := startEtcdTLS(dir, tf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.kill)

	open := func(opts []string) *cluster.Store {
		cfg := cluster.Config{Endpoints: []string{srv.endpoint()}, HostID: hostID("tls"), HostName: "tls",
			VTEP: netip.MustParseAddr("192.168.1.11"), TTL: 2 * time.Second, OpTimeout: time.Second}
		if err := cluster.ApplyOptions(&cfg, opts); err != nil {
			t.Fatal(err)
		}
		s, err := cluster.Open(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	s := open(tf.opts())
	rec, err := s.CreateNetwork(context.Background(), netID("ov-tls"), "ov-tls", nil, nil, build)
	if err != nil {
		t.Fatalf("creating a network over TLS: %v", err)
	}
	if rec.SegmentID != cluster.FirstSegment {
		t.Errorf("VNI over TLS: %d", rec.SegmentID)
	}

	noCert := open([]string{"kv.cacertfile=" + tf.ca})
	_, err = noCert.CreateNetwork(context.Background(), netID("ov-nocert"), "ov-nocert", nil, nil, build)
	if err == nil || errdefs.KindOf(err) != errdefs.KindUnavailable || !strings.Contains(err.Error(), srv.endpoint()) {
		t.Errorf("without a client certificate: %v (kind %v), want the store named, unavailable", err, errdefs.KindOf(err))
	}
}
