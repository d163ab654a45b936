package daemon

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDaemonLeavesNetworkingToTheController keeps the shape docs/ARCHITECTURE.md describes:
// the daemon runs containers and translates the API, and asks the controller for every piece
// of networking, so it imports none of the packages the controller orders.
func TestDaemonLeavesNetworkingToTheController(t *testing.T) {
	forbidden := []string{"firewall", "portmap", "dns", "sandbox", "driver", "ipam", "nldump"}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		parsed, err := parser.ParseFile(token.NewFileSet(), f, src, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range parsed.Imports {
			path := strings.Trim(imp.Path.Value, `"`)
			rest, ok := strings.CutPrefix(path, "github.com/cnet-dev/cnet/internal/")
			if !ok {
				continue
			}
			for _, p := range forbidden {
				if rest == p || strings.HasPrefix(rest, p+"/") {
					t.Errorf("%s imports %s: the daemon asks the controller for networking instead", f, path)
				}
			}
		}
	}
}
