package controller

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/cnet-dev/cnet/internal/sandbox"
)

// writeFiles writes sb's /etc/hosts, /etc/resolv.conf and /etc/hostname. The caller holds
// sb.mu.
func (c *Controller) writeFiles(sb *sbox) error {
	if sb.cfg.FilesDir == "" {
		return nil // an adopted namespace: its runtime writes its files
	}
	hostResolv, err := os.ReadFile("/etc/resolv.conf")
	if err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("reading the host's /etc/resolv.conf: %w", err)
	}
	resolv := sandbox.ResolvConf(hostResolv, sb.cfg.DNS)
	if sb.dns != nil {
		resolv = sandbox.EmbeddedResolvConf(hostResolv, sb.cfg.DNS)
	}
	dir := sb.cfg.FilesDir
	if err := sandbox.WriteFile(filepath.Join(dir, "resolv.conf"), resolv); err != nil {
		return err
	}
	if err := sandbox.WriteFile(filepath.Join(dir, "hostname"), []byte(sb.cfg.Hostname+"\n")); err != nil {
		return err
	}
	return sandbox.WriteFile(filepath.Join(dir, "hosts"), c.hostsContent(sb))
}

// writeHosts rewrites /etc/hosts in place after a connect or disconnect.
func (c *Controller) writeHosts(sb *sbox) error {
	if sb.cfg.FilesDir == "" {
		return nil
	}
	return sandbox.UpdateFile(filepath.Join(sb.cfg.FilesDir, "hosts"), c.hostsContent(sb))
}

// hostsContent is Docker's order: localhost lines, the extra lines (--add-host, links), then
// the container's own addresses.
func (c *Controller) hostsContent(sb *sbox) []byte {
	entries := append([]HostEntry(nil), sb.cfg.ExtraHosts...)
	names := []string{sb.cfg.Hostname}
	if sb.cfg.Domainname != "" {
		names = []string{sb.cfg.Hostname + "." + sb.cfg.Domainname, sb.cfg.Hostname}
	}
	for _, ep := range c.SandboxEndpoints(sb.id) {
		for _, a := range []netip.Prefix{ep.Address, ep.Address6} {
			if a.IsValid() {
				entries = append(entries, HostEntry{IP: a.Addr(), Names: names})
			}
		}
	}
	return sandbox.HostsContent(entries)
}

// HostModeFiles gives a container on the host's network the host's own view, as Docker does:
// the host's hosts and resolv.conf (loopback resolvers work there) and the host's name.
func HostModeFiles(dir, hostname string) error {
	for _, f := range []string{"hosts", "resolv.conf"} {
		data, err := os.ReadFile(filepath.Join("/etc", f))
		if err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("reading the host's /etc/%s: %w", f, err)
		}
		if err := sandbox.WriteFile(filepath.Join(dir, f), data); err != nil {
			return err
		}
	}
	return sandbox.WriteFile(filepath.Join(dir, "hostname"), []byte(hostname+"\n"))
}
