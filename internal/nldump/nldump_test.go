package nldump

import (
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
)

func TestRetry(t *testing.T) {
	errOther := errors.New("permission denied")
	tests := []struct {
		name        string
		results     []error // what each successive dump returns
		wantCalls   int
		wantErr     error
		wantPartial bool // the partial result must not be returned with an error
	}{
		{"first dump whole", []error{nil}, 1, nil, false},
		{"interrupted twice, then whole", []error{netlink.ErrDumpInterrupted, netlink.ErrDumpInterrupted, nil}, 3, nil, false},
		{"interrupted every time", []error{netlink.ErrDumpInterrupted, netlink.ErrDumpInterrupted, netlink.ErrDumpInterrupted,
			netlink.ErrDumpInterrupted, netlink.ErrDumpInterrupted, nil}, Attempts, netlink.ErrDumpInterrupted, false},
		{"wrapped interruption retried", []error{errors.Join(errors.New("x"), netlink.ErrDumpInterrupted), nil}, 2, nil, false},
		{"other error at once", []error{errOther, nil}, 1, errOther, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			got, err := Retry("things", func() ([]int, error) {
				err := tt.results[calls]
				calls++
				if err != nil {
					return []int{1}, err // a partial result, as netlink gives with an interruption
				}
				return []int{1, 2, 3}, nil
			})
			if calls != tt.wantCalls {
				t.Errorf("dumped %d times, want %d", calls, tt.wantCalls)
			}
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Errorf("error %v, want %v", err, tt.wantErr)
			}
			if err == nil && len(got) != 3 {
				t.Errorf("result %v, want the whole dump", got)
			}
			if err != nil && got != nil {
				t.Errorf("a failed dump returned %v", got)
			}
		})
	}
}

// TestNoDumpBypassesWrapper fails when code outside this package calls a netlink listing
// directly (netlink.X or a handle's X) instead of this package's retrying form. Tests are
// exempt: they may inspect what the kernel has however they like.
func TestNoDumpBypassesWrapper(t *testing.T) {
	dumps := map[string]bool{"LinkList": true, "LinkByName": true, "AddrList": true, "RouteList": true,
		"RouteListFiltered": true, "NeighList": true, "RuleList": true, "NeighProxyList": true, "BridgeVlanList": true}
	root := filepath.Join("..", "..")
	var found []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "nldump" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if sel, ok := n.(*ast.SelectorExpr); ok && dumps[sel.Sel.Name] {
				if x, ok := sel.X.(*ast.Ident); !ok || x.Name != "nldump" {
					found = append(found, fset.Position(sel.Pos()).String()+": "+sel.Sel.Name)
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range found {
		t.Errorf("netlink listing outside nldump (use nldump.%s): %s", f[strings.LastIndex(f, " ")+1:], f)
	}
}
