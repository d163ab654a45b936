package integration

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/cnet-dev/cnet/internal/testenv"
)

// referenceCNIDir is where Debian's containernetworking-plugins installs the reference plugins.
const referenceCNIDir = "/usr/lib/cni"

// BenchmarkCNI times what a runtime's CNI call costs, end to end as the runtime sees it: one
// cnitool exec that execs the plugin, for ADD and for DEL, on the same namespace each time.
// cnet's plugin (an exec of the cnet binary and a call to its daemon, which makes the
// endpoint) runs side by side with the reference bridge + host-local plugins on a bridge
// network of the same shape, alternating in one loop so that both see the same machine;
// the ratios are cnet's over the reference's (below 1: cnet is faster).
func BenchmarkCNI(b *testing.B) {
	if _, err := os.Stat(filepath.Join(referenceCNIDir, "bridge")); err != nil {
		b.Skipf("the reference plugins (Debian's containernetworking-plugins) are not installed: %v", err)
	}
	h := testenv.NewHost(b)
	h.MustCLI("network", "create", "--subnet", "10.82.0.0/16", "benchcni")
	r := newCNIRuntime(b, h, "benchcni")
	// The reference: a conflist of its own beside cnet's, its plugins linked into the same
	// CNI_PATH, its leases under the host's directory.
	for _, p := range []string{"bridge", "host-local"} {
		if err := os.Symlink(filepath.Join(referenceCNIDir, p), filepath.Join(r.dir, "bin", p)); err != nil {
			b.Fatal(err)
		}
	}
	ref := `{"cniVersion":"1.0.0","name":"refnet","plugins":[{"type":"bridge","bridge":"refbr0","isGateway":true,"ipMasq":true,` +
		`"ipam":{"type":"host-local","ranges":[[{"subnet":"10.83.0.0/16"}]],"routes":[{"dst":"0.0.0.0/0"}],"dataDir":"` + filepath.Join(r.dir, "ipam") + `"}}]}`
	if err := os.WriteFile(filepath.Join(r.dir, "net.d", "refnet.conflist"), []byte(ref), 0o644); err != nil {
		b.Fatal(err)
	}
	h.AllowLinks("refbr0")
	b.Cleanup(func() { _, _ = h.Run("ip", "link", "del", "refbr0") })
	nsCnet, nsRef := r.netns("cnetns"), r.netns("refns")

	call := func(cmd, network, ns string) time.Duration {
		start := time.Now()
		if out, err := r.run(cmd, network, ns, "pod"); err != nil {
			b.Fatalf("cnitool %s %s: %v\n%s", cmd, network, err, out)
		}
		return time.Since(start)
	}
	var cnetAdd, cnetDel, refAdd, refDel []time.Duration
	for b.Loop() {
		cnetAdd = append(cnetAdd, call("add", "benchcni", nsCnet))
		cnetDel = append(cnetDel, call("del", "benchcni", nsCnet))
		refAdd = append(refAdd, call("add", "refnet", nsRef))
		refDel = append(refDel, call("del", "refnet", nsRef))
	}
	for _, m := range []struct {
		name string
		lat  []time.Duration
	}{{"cnet-add", cnetAdd}, {"cnet-del", cnetDel}, {"ref-add", refAdd}, {"ref-del", refDel}} {
		b.ReportMetric(ms(medianDur(m.lat)), m.name+"-ms")
	}
	b.ReportMetric(float64(medianDur(cnetAdd))/float64(medianDur(refAdd)), "add-ratio")
	b.ReportMetric(float64(medianDur(cnetDel))/float64(medianDur(refDel)), "del-ratio")
}

func medianDur(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}
