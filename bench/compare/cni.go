package main

import (
	"crypto/sha512"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// cniNet is the network the CNI system attaches to, and cniPrefix names its namespaces: the
// host one is cniPrefix, the containers' cniPrefix-c<i>, so a leftover is easy to tell apart.
const (
	cniNet    = "cnetcmp"
	cniPrefix = "cnetcmp-cni"
)

// cniCacheDir is where libcni (v1.1.2, which cnitool is built from) caches every ADD's result:
// CacheDir in libcni/api.go. cnitool passes libcni no cache directory and reads no variable
// or config key to change it, so the run cannot redirect the cache: Stop removes exactly the
// files the run made instead (see cacheFile), and the directories only if Start found none.
const cniCacheDir = "/var/lib/cni"

// cni is the CNI reference plugins (bridge + host-local, Debian's containernetworking-plugins)
// driven by cnitool: no daemon and no containers, only what a container runtime does for each
// container's network namespace. It is the floor under Docker's and Podman's attach times: the
// same kind of bridge and veth, made by one exec of cnitool that execs the plugins.
type cni struct {
	env     *Env
	host    *netnsHost
	confDir string   // the conflist, for NETCONFPATH
	ipamDir string   // host-local's dataDir: its leases, instead of /var/lib/cni/networks
	ctrs    []string // container namespace names made so far; Stop deletes every one

	// What existed under cniCacheDir before Start, so that Stop removes only what the run made.
	cacheDirExisted, resultsDirExisted bool
	cacheChecked                       bool
}

func newCNI() *cni { return &cni{} }

// Name is the report's column heading.
func (c *cni) Name() string { return "CNI" }

// Start makes the host namespace and writes the conflist. The network is what Docker's user
// networks are: a bridge that is the gateway, masquerading out, nothing published. The subnet
// (a /16) has room for far more containers than any run attaches.
func (c *cni) Start(env *Env) error {
	c.env = env
	if err := c.noteCache(); err != nil {
		return err
	}
	conf, err := env.Dir("cni/net.d")
	if err != nil {
		return fmt.Errorf("making the CNI config directory: %w", err)
	}
	ipam, err := env.Dir("cni/ipam")
	if err != nil {
		return fmt.Errorf("making host-local's data directory: %w", err)
	}
	c.confDir, c.ipamDir = conf, ipam
	list := map[string]any{
		"cniVersion": "1.0.0",
		"name":       cniNet,
		"plugins": []any{map[string]any{
			"type":      "bridge",
			"bridge":    "cnetcmp0",
			"isGateway": true,
			"ipMasq":    true,
			"ipam": map[string]any{
				"type":    "host-local",
				"ranges":  [][]map[string]string{{{"subnet": "10.89.0.0/16"}}},
				"routes":  []map[string]string{{"dst": "0.0.0.0/0"}},
				"dataDir": ipam,
			},
		}},
	}
	b, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(conf, cniNet+".conflist"), b, 0o644); err != nil {
		return fmt.Errorf("writing the CNI conflist: %w", err)
	}
	for _, bin := range []string{env.CNITool, filepath.Join(env.CNIPath, "bridge"), filepath.Join(env.CNIPath, "host-local")} {
		if _, err := os.Stat(bin); err != nil {
			return fmt.Errorf("CNI: %w (install containernetworking-plugins; build cnitool with go install github.com/containernetworking/cni/cnitool@v1.1.2)", err)
		}
	}
	h, err := newNetnsHost(cniPrefix)
	if err != nil {
		return fmt.Errorf("making CNI's host namespace (an earlier run's leftover? ip netns del %s): %w", cniPrefix, err)
	}
	c.host = h
	return nil
}

// noteCache records whether libcni's cache directories exist before the run makes any.
func (c *cni) noteCache() error {
	if c.cacheChecked {
		return nil
	}
	var err error
	if c.cacheDirExisted, err = exists(cniCacheDir); err != nil {
		return err
	}
	if c.resultsDirExisted, err = exists(filepath.Join(cniCacheDir, "results")); err != nil {
		return err
	}
	c.cacheChecked = true
	return nil
}

func exists(path string) (bool, error) {
	_, err := os.Stat(path)
	if err == nil {
		return true, nil
	}
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	return false, fmt.Errorf("checking %s: %w", path, err)
}

// PrepareAttach makes n named network namespaces (loopback up, nothing else), which is all a
// container is to CNI; named so that cnitool, which takes a path, can find them.
func (c *cni) PrepareAttach(n int) error {
	if c.host == nil {
		return errors.New("CNI: PrepareAttach before a successful Start")
	}
	for i := len(c.ctrs); i < n; i++ {
		name := fmt.Sprintf("%s-c%d", cniPrefix, i)
		ns, err := newNetnsHost(name)
		if err != nil {
			return fmt.Errorf("making container namespace %d of %d (an earlier run's leftover? ip netns del %s): %w", i+1, n, name, err)
		}
		c.ctrs = append(c.ctrs, ns.name)
	}
	return nil
}

// cnitool is one cnitool command on the network for the i-th container namespace, run in the
// host namespace: the bridge and the host ends of the veths go there, not on the machine.
func (c *cni) cnitool(verb string, i int) (*exec.Cmd, error) {
	if i < 0 || i >= len(c.ctrs) {
		return nil, fmt.Errorf("CNI: no container namespace %d (PrepareAttach made %d)", i, len(c.ctrs))
	}
	cmd := c.host.Cmd(c.env.CNITool, verb, cniNet, c.nsPath(i))
	cmd.Env = append(os.Environ(), "NETCONFPATH="+c.confDir, "CNI_PATH="+c.env.CNIPath)
	return cmd, nil
}

func (c *cni) nsPath(i int) string { return "/run/netns/" + c.ctrs[i] }

// Attach runs `cnitool add`: what a runtime does to put a container on a CNI network (the
// bridge plugin makes the veth, host-local leases the address, masquerading is set up).
func (c *cni) Attach(i int) (time.Duration, error) {
	cmd, err := c.cnitool("add", i)
	if err != nil {
		return 0, err
	}
	d, err := timed(cmd)
	if err != nil {
		return d, fmt.Errorf("CNI attach %d: %w", i, err)
	}
	return d, nil
}

// Detach runs `cnitool del`, which also removes the cached result Attach left.
func (c *cni) Detach(i int) (time.Duration, error) {
	cmd, err := c.cnitool("del", i)
	if err != nil {
		return 0, err
	}
	d, err := timed(cmd)
	if err != nil {
		return d, fmt.Errorf("CNI detach %d: %w", i, err)
	}
	return d, nil
}

// cacheFile is the result libcni caches for the i-th container namespace: cnitool names the
// container "cnitool-" and the first 10 bytes of the SHA-512 of the namespace's path, in hex,
// and libcni files it as <network>-<container>-<interface> (eth0, cnitool's default).
func (c *cni) cacheFile(i int) string {
	sum := sha512.Sum512([]byte(c.nsPath(i)))
	return filepath.Join(cniCacheDir, "results", fmt.Sprintf("%s-cnitool-%x-eth0", cniNet, sum[:10]))
}

// Stop deletes the host namespace (bridge, veths and iptables rules go with it), every
// container namespace, the cached results and the run's CNI directories. Nothing needs a
// `cnitool del` first: all that del would undo lives in those namespaces and files.
func (c *cni) Stop() error {
	var errs []error
	if c.host != nil {
		if err := c.host.Close(); err != nil {
			errs = append(errs, fmt.Errorf("deleting CNI's host namespace: %w", err))
		}
		c.host = nil
	}
	for i := range c.ctrs {
		if err := (&netnsHost{name: c.ctrs[i]}).Close(); err != nil {
			errs = append(errs, fmt.Errorf("deleting container namespace %s: %w", c.ctrs[i], err))
		}
		if err := os.Remove(c.cacheFile(i)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("removing libcni's cached result: %w", err))
		}
	}
	c.ctrs = nil
	// The directories go only if the run made them and nothing else has put files in them
	// since (os.Remove leaves a directory that is not empty).
	if c.cacheChecked {
		if !c.resultsDirExisted {
			removeEmptyDir(filepath.Join(cniCacheDir, "results"), &errs)
		}
		if !c.cacheDirExisted {
			removeEmptyDir(cniCacheDir, &errs)
		}
	}
	if c.env != nil && c.confDir != "" {
		if err := os.RemoveAll(filepath.Dir(c.confDir)); err != nil {
			errs = append(errs, fmt.Errorf("removing the run's CNI directory: %w", err))
		}
		c.confDir, c.ipamDir = "", ""
	}
	return errors.Join(errs...)
}

// removeEmptyDir removes dir if it exists and is empty, and records any other failure.
func removeEmptyDir(dir string, errs *[]error) {
	err := os.Remove(dir)
	if err == nil || errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ENOTEMPTY) {
		return
	}
	*errs = append(*errs, fmt.Errorf("removing %s: %w", dir, err))
}
