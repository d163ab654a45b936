package api

import (
	"os"
	"path/filepath"
	"testing"
)

// TestCNIPending: requests come back in the order written, whole; files that are not one
// request are reported with their path and do not stop the others; a missing directory holds
// nothing; a request that is neither or both is refused.
func TestCNIPending(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cni-pending")
	if files, errs := ReadCNIPending(dir); len(files) != 0 || len(errs) != 0 {
		t.Fatalf("missing directory: %v, %v", files, errs)
	}
	want := []CNIPending{
		{Del: &CNIDetachRequest{ContainerID: "a", IfName: "eth0", Network: "n"}},
		{GC: &CNIGCRequest{Network: "n", Valid: []CNIDetachRequest{{ContainerID: "b", IfName: "eth0"}}}},
		{Del: &CNIDetachRequest{ContainerID: "c", IfName: "eth1", Network: "m"}},
	}
	for _, p := range want {
		if _, err := WriteCNIPending(dir, p); err != nil {
			t.Fatal(err)
		}
	}
	for _, bad := range []struct{ name, data string }{
		{"00000000000000000001-1.json", "{"},
		{"00000000000000000002-1.json", `{}`},
		{"00000000000000000003-1.json", `{"Del":{"ContainerID":"x"},"GC":{"Network":"n"}}`},
	} {
		if err := os.WriteFile(filepath.Join(dir, bad.name), []byte(bad.data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	files, errs := ReadCNIPending(dir)
	if len(errs) != 3 {
		t.Errorf("errors %v, want one per bad file", errs)
	}
	if len(files) != len(want) {
		t.Fatalf("read %d requests, want %d", len(files), len(want))
	}
	for i, f := range files {
		switch {
		case want[i].Del != nil && (f.Request.Del == nil || *f.Request.Del != *want[i].Del):
			t.Errorf("request %d: %+v, want DEL %+v", i, f.Request, *want[i].Del)
		case want[i].GC != nil && (f.Request.GC == nil || f.Request.GC.Network != want[i].GC.Network || len(f.Request.GC.Valid) != 1):
			t.Errorf("request %d: %+v, want GC %+v", i, f.Request, *want[i].GC)
		}
	}
	for _, p := range []CNIPending{{}, {Del: want[0].Del, GC: want[1].GC}} {
		if _, err := WriteCNIPending(dir, p); err == nil {
			t.Errorf("WriteCNIPending(%+v) accepted a request that is not one DEL or one GC", p)
		}
	}
}
