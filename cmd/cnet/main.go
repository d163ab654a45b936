// Command cnet is Docker-style container networking in one binary: `cnet daemon` runs the
// daemon, every other command is a client of it. The hidden `shim` and `init` entry points are
// the daemon re-executing itself to start containers.
package main

import (
	"os"

	"github.com/cnet-dev/cnet/internal/cli"
	"github.com/cnet-dev/cnet/internal/container"
)

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "shim":
			container.ShimMain(os.Args[2:])
		case "init":
			container.InitMain(os.Args[2:])
		}
	}
	os.Exit(cli.Main(daemonCommand()))
}
