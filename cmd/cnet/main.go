// Command cnet is Docker-style container networking in one binary: `cnet daemon` runs the
// daemon, every other command is a client of it. The hidden `shim` entry point is the daemon
// re-executing itself to start a container's supervisor. Run with CNI_COMMAND set (a runtime
// executing it from its CNI bin dir as "cnet"), it is a CNI plugin instead.
package main

import (
	"os"

	"github.com/cnet-dev/cnet/internal/cli"
	"github.com/cnet-dev/cnet/internal/cniplugin"
	"github.com/cnet-dev/cnet/internal/container"
)

func main() {
	// First: a CNI runtime passes its own arguments in the environment, and whatever is in
	// os.Args must not be read as a cnet command.
	if os.Getenv("CNI_COMMAND") != "" {
		cniplugin.Main()
	}
	if len(os.Args) > 1 && os.Args[1] == "shim" {
		container.ShimMain(os.Args[2:])
	}
	os.Exit(cli.Main(daemonCommand()))
}
