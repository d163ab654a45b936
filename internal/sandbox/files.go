package sandbox

import (
	"bufio"
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
)

// HostEntry is one "IP names..." line of a container's /etc/hosts.
type HostEntry struct {
	IP    netip.Addr
	Names []string
}

// hostsHeader is what Docker writes first in every container's /etc/hosts.
const hostsHeader = `127.0.0.1	localhost
::1	localhost ip6-localhost ip6-loopback
fe00::0	ip6-localnet
ff00::0	ip6-mcastprefix
ff02::1	ip6-allnodes
ff02::2	ip6-allrouters
`

// HostsContent renders /etc/hosts: Docker's localhost lines, then one line per entry.
func HostsContent(entries []HostEntry) []byte {
	var b bytes.Buffer
	b.WriteString(hostsHeader)
	for _, e := range entries {
		fmt.Fprintf(&b, "%s\t%s\n", e.IP, strings.Join(e.Names, " "))
	}
	return b.Bytes()
}

// ResolvOptions are a container's --dns, --dns-search and --dns-option; each one given
// replaces the host's lines of its kind, as in Docker.
type ResolvOptions struct {
	Nameservers []string
	Search      []string
	Options     []string
}

// ResolvConf derives a container's resolv.conf from the host's, as Docker does for containers
// without the embedded resolver: nameservers on loopback are unusable from another namespace
// and are dropped; search and options lines are kept unless o replaces them.
func ResolvConf(host []byte, o ResolvOptions) []byte {
	if len(o.Nameservers) > 0 || len(o.Search) > 0 || len(o.Options) > 0 {
		host = override(host, o)
	}
	var b bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(host))
	servers := 0
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		fields := strings.Fields(line)
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") || strings.HasPrefix(fields[0], ";") {
			continue
		}
		switch fields[0] {
		case "nameserver":
			if len(fields) < 2 {
				continue
			}
			if a, err := netip.ParseAddr(fields[1]); err == nil && a.IsLoopback() {
				continue
			}
			servers++
		case "search", "domain", "options":
		default:
			continue
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	if servers == 0 {
		// Docker's fallback when the host has only loopback resolvers.
		b.WriteString("nameserver 8.8.8.8\nnameserver 8.8.4.4\n")
	}
	return b.Bytes()
}

// WriteFile replaces path atomically, so a container reading /etc/hosts while it is updated
// sees the old or the new file, never half of one. The bind mount inside the container follows
// the inode, so callers update content in place instead (see UpdateFile).
func WriteFile(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", filepath.Dir(path), err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("replacing %s: %w", path, err)
	}
	return nil
}

// UpdateFile rewrites an existing file in place. A running container has the file
// bind-mounted, which pins the inode: a rename would leave the container seeing the old one.
func UpdateFile(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("updating %s: %w", path, err)
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("updating %s: %w", path, err)
	}
	return nil
}

// override replaces the host's lines of each kind o sets.
func override(host []byte, o ResolvOptions) []byte {
	var b bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(host))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 0 {
			switch {
			case fields[0] == "nameserver" && len(o.Nameservers) > 0,
				(fields[0] == "search" || fields[0] == "domain") && len(o.Search) > 0,
				fields[0] == "options" && len(o.Options) > 0:
				continue
			}
		}
		b.WriteString(sc.Text())
		b.WriteByte('\n')
	}
	for _, ns := range o.Nameservers {
		fmt.Fprintf(&b, "nameserver %s\n", ns)
	}
	if len(o.Search) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(o.Search, " "))
	}
	if len(o.Options) > 0 {
		fmt.Fprintf(&b, "options %s\n", strings.Join(o.Options, " "))
	}
	return b.Bytes()
}

// EmbeddedResolvConf is the resolv.conf of a container served by the embedded resolver, as
// Docker writes it: 127.0.0.11 as the only nameserver (the real ones are the resolver's
// upstreams), the search domains, and the options with ndots:0 unless the container set ndots.
func EmbeddedResolvConf(host []byte, o ResolvOptions) []byte {
	search, options := o.Search, o.Options
	if len(search) == 0 || len(options) == 0 {
		sc := bufio.NewScanner(bytes.NewReader(host))
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			switch {
			case len(f) > 1 && (f[0] == "search" || f[0] == "domain") && len(o.Search) == 0:
				search = f[1:]
			case len(f) > 1 && f[0] == "options" && len(o.Options) == 0:
				options = append(options, f[1:]...)
			}
		}
	}
	ndots := false
	for _, opt := range options {
		ndots = ndots || strings.HasPrefix(opt, "ndots:")
	}
	if !ndots {
		options = append([]string{"ndots:0"}, options...)
	}
	var b bytes.Buffer
	b.WriteString("nameserver 127.0.0.11\n")
	if len(search) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(search, " "))
	}
	fmt.Fprintf(&b, "options %s\n", strings.Join(options, " "))
	return b.Bytes()
}
