package container

import (
	"fmt"
	"os"
)

// InitMain is the entry point for `cnet init`. This package has no separate init process: the
// shim prepares a container's namespaces on a dedicated thread of its own and starts the
// container's process straight from it (see prepareContainer), which saves a re-exec per
// container and reports a command that cannot run as an ordinary error. InitMain remains so that
// the command wiring compiles; invoked, it explains itself and exits.
func InitMain(args []string) {
	fmt.Fprintf(os.Stderr, "cnet init %v: not used by this version of cnet; containers are started by `cnet shim`\n", args)
	os.Exit(2)
}
