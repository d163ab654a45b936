package main

import (
	_ "github.com/creack/pty"
	_ "github.com/google/nftables"
	_ "github.com/miekg/dns"
	_ "github.com/spf13/cobra"
	_ "github.com/vishvananda/netlink"
	_ "github.com/vishvananda/netns"
	_ "go.etcd.io/bbolt"
	_ "golang.org/x/sys/unix"
	_ "golang.org/x/term"
)

func main() {}
