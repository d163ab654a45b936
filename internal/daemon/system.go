package daemon

import (
	"bufio"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cnet-dev/cnet/internal/api"
	"github.com/cnet-dev/cnet/internal/controller"
)

// Info implements api.Backend: GET /info, Docker's fields from what cnet has. Its ID is made
// once per data root (engineID), Driver "overlay" (containers' roots are overlayfs over the image's
// layers), the network plugins cnet's drivers.
func (d *Daemon) Info(ctx context.Context) (api.Info, error) {
	cs, err := d.ContainerList(ctx, true)
	if err != nil {
		return api.Info{}, err
	}
	imgs, err := d.images.List()
	if err != nil {
		return api.Info{}, err
	}
	in := api.Info{
		ID: engineID(d.cfg.DataRoot), Images: len(imgs), Driver: "overlay", DriverStatus: [][2]string{},
		Plugins:        api.PluginsInfo{Volume: []string{}, Network: d.cfg.Drivers.Types(), Log: []string{"json-file"}},
		IPv4Forwarding: true, NGoroutines: runtime.NumGoroutine(), SystemTime: time.Now().Format(time.RFC3339Nano),
		LoggingDriver: "json-file", CgroupDriver: "none", CgroupVersion: "2", KernelVersion: api.KernelVersion(),
		OperatingSystem: osRelease("PRETTY_NAME"), OSVersion: osRelease("VERSION_ID"), OSType: "linux",
		Architecture: machine(), IndexServerAddress: "https://index.docker.io/v1/", NCPU: runtime.NumCPU(),
		DockerRootDir: d.cfg.DataRoot, Labels: []string{}, ServerVersion: api.EngineVersion,
		Runtimes: map[string]any{}, DefaultRuntime: "cnet", Swarm: api.SwarmInfo{LocalNodeState: "inactive"},
		SecurityOptions: []string{}, Warnings: []string{}, NEventsListener: d.events.Listeners(),
		RegistryConfig: api.RegistryConfig{InsecureRegistryCIDRs: []string{"127.0.0.0/8"}, IndexConfigs: map[string]any{}, Mirrors: []string{}},
	}
	for _, r := range d.cfg.InsecureRegistries {
		in.RegistryConfig.IndexConfigs[r] = map[string]any{"Name": r, "Mirrors": []string{}, "Secure": false, "Official": false}
	}
	in.Name, _ = os.Hostname()
	var si unix.Sysinfo_t
	if unix.Sysinfo(&si) == nil {
		in.MemTotal = int64(si.Totalram) * int64(si.Unit)
	}
	if fds, err := os.ReadDir("/proc/self/fd"); err == nil {
		in.NFd = len(fds)
	}
	for _, c := range cs {
		in.Containers++
		switch c.State {
		case "running":
			in.ContainersRunning++
		case "paused":
			in.ContainersPaused++
		default:
			in.ContainersStopped++
		}
	}
	return in, nil
}

// DiskUsage implements api.Backend: GET /system/df. An image's containers are counted by ID;
// a container's SizeRw is what it wrote (its overlay upper directory).
func (d *Daemon) DiskUsage(ctx context.Context) (api.DiskUsage, error) {
	imgs, err := d.ImageList(ctx)
	if err != nil {
		return api.DiskUsage{}, err
	}
	cs, err := d.ContainerList(ctx, true)
	if err != nil {
		return api.DiskUsage{}, err
	}
	uses := map[string]int64{}
	for i := range cs {
		cs[i].SizeRw = dirSize(filepath.Join(d.imageRoot(cs[i].ID), "upper"))
		uses[cs[i].ImageID]++
	}
	du := api.DiskUsage{Images: imgs, Containers: cs, Volumes: []any{}, BuildCache: []any{}}
	for i := range du.Images {
		du.Images[i].Containers = uses[du.Images[i].ID]
		du.Images[i].SharedSize = 0
		du.LayersSize += du.Images[i].Size
	}
	return du, nil
}

// engineID is the daemon's ID for /info, made at random the first time and kept in the data
// root, so that it stays the same across restarts as Docker's does.
func engineID(dataRoot string) string {
	path := filepath.Join(dataRoot, "engine-id")
	if b, err := os.ReadFile(path); err == nil && len(b) > 0 {
		return strings.TrimSpace(string(b))
	}
	id := controller.NewID()
	_ = os.WriteFile(path, []byte(id+"\n"), 0o600)
	return id
}

// dirSize is the bytes of the regular files under dir (0 if it does not exist).
func dirSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, e fs.DirEntry, err error) error {
		if err == nil && e.Type().IsRegular() {
			if fi, err := e.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// osRelease reads a key of /etc/os-release ("" if missing).
func osRelease(key string) string {
	f, err := os.Open("/etc/os-release")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), key+"="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return ""
}

// machine is uname's machine (x86_64), which Docker reports as Architecture.
func machine() string {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return runtime.GOARCH
	}
	return unix.ByteSliceToString(u.Machine[:])
}

// nonNil is m, or an empty map where Docker's JSON has {} rather than null.
func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}
