// Command cnet is Docker-style container networking in one binary: `cnet daemon` runs the
// daemon, every other command is a client of it. The hidden `shim` entry point is the daemon
// re-executing itself to start a container's supervisor.
package main

import (
	"os"

	"github.com/cnet-dev/cnet/internal/cli"
	"github.com/cnet-dev/cnet/internal/container"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "shim" {
		container.ShimMain(os.Args[2:])
	}
	os.Exit(cli.Main(daemonCommand()))
}
