package cli

import (
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/spf13/pflag"

	"github.com/cnet-dev/cnet/internal/api"
)

// listValue is a repeatable flag that keeps every value whole (no comma splitting, unlike
// pflag's StringSlice) and appends even when two flag names share it (--net-alias and
// --network-alias), which pflag's own StringArray does not.
type listValue struct{ p *[]string }

func (v listValue) String() string     { return strings.Join(*v.p, ",") }
func (v listValue) Type() string       { return "list" }
func (v listValue) Set(s string) error { *v.p = append(*v.p, s); return nil }

// mapValue is a repeatable KEY=VALUE flag; a bare KEY maps to "", as docker's --opt does.
type mapValue struct{ m map[string]string }

func (v mapValue) String() string {
	keys := make([]string, 0, len(v.m))
	for k := range v.m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i, k := range keys {
		keys[i] = k + "=" + v.m[k]
	}
	return strings.Join(keys, ",")
}

func (v mapValue) Type() string { return "map" }

func (v mapValue) Set(s string) error {
	k, val, _ := strings.Cut(s, "=")
	if k == "" {
		return fmt.Errorf("invalid key=value pair %q: the key is empty", s)
	}
	v.m[k] = val
	return nil
}

func addList(fs *pflag.FlagSet, p *[]string, name, shorthand, usage string) {
	fs.VarP(listValue{p}, name, shorthand, usage)
}

func addMap(fs *pflag.FlagSet, m map[string]string, name, shorthand, usage string) {
	fs.VarP(mapValue{m}, name, shorthand, usage)
}

// envList completes -e values as docker does: KEY=VALUE is passed as is, a bare KEY takes the
// caller's own value when it has one (so secrets need not appear on the command line).
func envList(vals []string) ([]string, error) {
	out := make([]string, 0, len(vals))
	for _, v := range vals {
		k, _, hasValue := strings.Cut(v, "=")
		if k == "" {
			return nil, fmt.Errorf("invalid environment variable %q: the name is empty", v)
		}
		if !hasValue {
			if local, ok := os.LookupEnv(k); ok {
				v = k + "=" + local
			}
		}
		out = append(out, v)
	}
	return out, nil
}

// nilIfEmpty keeps optional maps out of requests when no flag filled them.
func nilIfEmpty(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return m
}

// parseFilterFlags turns --filter key=value words into the API's filters, which the daemon
// applies (and whose keys it checks).
func parseFilterFlags(args []string) (api.Filters, error) {
	f := api.Filters{}
	for _, a := range args {
		k, v, ok := strings.Cut(a, "=")
		if !ok {
			return nil, fmt.Errorf("bad format of filter %q (expected name=value)", a)
		}
		f.Add(strings.ToLower(strings.TrimSpace(k)), v)
	}
	return f, nil
}
