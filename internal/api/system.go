package api

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// MinVersion is the oldest Engine API version cnet answers, Docker's own minimum. Every
// version from it up to Version is served with the same shapes: what changed in between
// concerns what cnet does not have (swarm, volumes, builds) or adds fields old clients ignore.
const MinVersion = "1.24"

// EngineVersion is cnet's own version, the Version of GET /version and ServerVersion of /info.
const EngineVersion = "0.5.0-cnet"

// SystemBackend is what GET /info and /system/df are made from.
type SystemBackend interface {
	Info(ctx context.Context) (Info, error)
	DiskUsage(ctx context.Context) (DiskUsage, error)
}

// VersionResponse is GET /version.
type VersionResponse struct {
	Platform      struct{ Name string } `json:"Platform"`
	Components    []VersionComponent    `json:"Components"`
	Version       string                `json:"Version"`
	APIVersion    string                `json:"ApiVersion"`
	MinAPIVersion string                `json:"MinAPIVersion"`
	GitCommit     string                `json:"GitCommit"`
	GoVersion     string                `json:"GoVersion"`
	Os            string                `json:"Os"`
	Arch          string                `json:"Arch"`
	KernelVersion string                `json:"KernelVersion,omitempty"`
	BuildTime     string                `json:"BuildTime,omitempty"`
}

// VersionComponent is one element of /version's Components.
type VersionComponent struct {
	Name    string            `json:"Name"`
	Version string            `json:"Version"`
	Details map[string]string `json:"Details,omitempty"`
}

// PluginsInfo is /info's Plugins: the drivers the daemon has.
type PluginsInfo struct {
	Volume        []string `json:"Volume"`
	Network       []string `json:"Network"`
	Authorization []string `json:"Authorization"`
	Log           []string `json:"Log"`
}

// SwarmInfo is /info's Swarm: cnet takes part in none ("inactive"); multi-host state is in etcd.
type SwarmInfo struct {
	NodeID           string `json:"NodeID"`
	NodeAddr         string `json:"NodeAddr"`
	LocalNodeState   string `json:"LocalNodeState"`
	ControlAvailable bool   `json:"ControlAvailable"`
	Error            string `json:"Error"`
}

// RegistryConfig is /info's RegistryConfig.
type RegistryConfig struct {
	InsecureRegistryCIDRs []string       `json:"InsecureRegistryCIDRs"`
	IndexConfigs          map[string]any `json:"IndexConfigs"`
	Mirrors               []string       `json:"Mirrors"`
	AllowNondistributable []string       `json:"AllowNondistributableArtifactsCIDRs"`
}

// Commit is /info's ContainerdCommit, RuncCommit and InitCommit.
type Commit struct {
	ID       string `json:"ID"`
	Expected string `json:"Expected"`
}

// Info is GET /info, with Docker's field names; what cnet has no notion of is zero.
type Info struct {
	ID                 string         `json:"ID"`
	Containers         int            `json:"Containers"`
	ContainersRunning  int            `json:"ContainersRunning"`
	ContainersPaused   int            `json:"ContainersPaused"`
	ContainersStopped  int            `json:"ContainersStopped"`
	Images             int            `json:"Images"`
	Driver             string         `json:"Driver"`
	DriverStatus       [][2]string    `json:"DriverStatus"`
	Plugins            PluginsInfo    `json:"Plugins"`
	MemoryLimit        bool           `json:"MemoryLimit"`
	SwapLimit          bool           `json:"SwapLimit"`
	CPUCfsPeriod       bool           `json:"CpuCfsPeriod"`
	CPUCfsQuota        bool           `json:"CpuCfsQuota"`
	IPv4Forwarding     bool           `json:"IPv4Forwarding"`
	Debug              bool           `json:"Debug"`
	NFd                int            `json:"NFd"`
	OomKillDisable     bool           `json:"OomKillDisable"`
	NGoroutines        int            `json:"NGoroutines"`
	SystemTime         string         `json:"SystemTime"`
	LoggingDriver      string         `json:"LoggingDriver"`
	CgroupDriver       string         `json:"CgroupDriver"`
	CgroupVersion      string         `json:"CgroupVersion"`
	NEventsListener    int            `json:"NEventsListener"`
	KernelVersion      string         `json:"KernelVersion"`
	OperatingSystem    string         `json:"OperatingSystem"`
	OSVersion          string         `json:"OSVersion"`
	OSType             string         `json:"OSType"`
	Architecture       string         `json:"Architecture"`
	IndexServerAddress string         `json:"IndexServerAddress"`
	RegistryConfig     RegistryConfig `json:"RegistryConfig"`
	NCPU               int            `json:"NCPU"`
	MemTotal           int64          `json:"MemTotal"`
	DockerRootDir      string         `json:"DockerRootDir"`
	Name               string         `json:"Name"`
	Labels             []string       `json:"Labels"`
	ExperimentalBuild  bool           `json:"ExperimentalBuild"`
	ServerVersion      string         `json:"ServerVersion"`
	Runtimes           map[string]any `json:"Runtimes"`
	DefaultRuntime     string         `json:"DefaultRuntime"`
	Swarm              SwarmInfo      `json:"Swarm"`
	LiveRestoreEnabled bool           `json:"LiveRestoreEnabled"`
	Isolation          string         `json:"Isolation"`
	InitBinary         string         `json:"InitBinary"`
	ContainerdCommit   Commit         `json:"ContainerdCommit"`
	RuncCommit         Commit         `json:"RuncCommit"`
	InitCommit         Commit         `json:"InitCommit"`
	SecurityOptions    []string       `json:"SecurityOptions"`
	Warnings           []string       `json:"Warnings"`
}

// DiskUsage is GET /system/df.
type DiskUsage struct {
	LayersSize int64              `json:"LayersSize"`
	Images     []ImageSummary     `json:"Images"`
	Containers []ContainerSummary `json:"Containers"`
	Volumes    []any              `json:"Volumes"`
	BuildCache []any              `json:"BuildCache"`
}

// versionParts reads "1.41" as (1, 41).
func versionParts(v string) (int, int, bool) {
	a, b, ok := strings.Cut(v, ".")
	x, err1 := strconv.Atoi(a)
	y, err2 := strconv.Atoi(b)
	return x, y, ok && err1 == nil && err2 == nil
}

// compareVersions is -1, 0 or 1 as a is older than, equal to, or newer than b.
func compareVersions(a, b string) int {
	ax, ay, _ := versionParts(a)
	bx, by, _ := versionParts(b)
	return cmp.Or(cmp.Compare(ax, bx), cmp.Compare(ay, by))
}

// checkVersion refuses a request whose path names an API version cnet does not serve, with
// Docker's messages (clients negotiate from /_ping's Api-Version first, so this is rare).
func checkVersion(v string) error {
	if _, _, ok := versionParts(v); !ok {
		return fmt.Errorf("invalid API version %q", v)
	}
	if compareVersions(v, Version) > 0 {
		return fmt.Errorf("client version %s is too new. Maximum supported API version is %s", v, Version)
	}
	if compareVersions(v, MinVersion) < 0 {
		return fmt.Errorf("client version %s is too old. Minimum supported API version is %s, please upgrade your client to a newer version", v, MinVersion)
	}
	return nil
}

// setEngineHeaders puts Docker's headers on every answer: clients read the API version from
// them (the docker CLI's negotiation reads /_ping's).
func setEngineHeaders(h http.Header) {
	h.Set("Api-Version", Version)
	h.Set("Docker-Experimental", "false")
	h.Set("Ostype", "linux")
	h.Set("Server", "cnet/"+EngineVersion+" (linux)")
}

func ping(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-cache, no-store, must-revalidate")
	w.Header().Set("Pragma", "no-cache")
	w.Header().Set("Builder-Version", "1")
	if r.Method == http.MethodHead {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Content-Length", "0")
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("OK"))
}

func version(w http.ResponseWriter, _ *http.Request) {
	v := VersionResponse{Version: EngineVersion, APIVersion: Version, MinAPIVersion: MinVersion,
		GoVersion: runtime.Version(), Os: "linux", Arch: runtime.GOARCH, KernelVersion: KernelVersion(), GitCommit: gitCommit()}
	v.Platform.Name = "cnet"
	v.Components = []VersionComponent{{Name: "Engine", Version: EngineVersion, Details: map[string]string{
		"ApiVersion": Version, "MinAPIVersion": MinVersion, "GoVersion": v.GoVersion, "Os": "linux", "Arch": v.Arch,
		"KernelVersion": v.KernelVersion, "GitCommit": v.GitCommit, "Experimental": "false"}}}
	writeJSON(w, http.StatusOK, v)
}

// gitCommit is the commit the binary was built from, as Go's build info records it (short, as
// Docker shows its own), "" outside a checkout.
func gitCommit() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 7 {
				return s.Value[:7]
			}
		}
	}
	return ""
}

// KernelVersion is uname's release, as Docker reports it.
func KernelVersion() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}

func (s *server) info(w http.ResponseWriter, r *http.Request) {
	in, err := s.b.Info(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, in)
}

func (s *server) diskUsage(w http.ResponseWriter, r *http.Request) {
	du, err := s.b.DiskUsage(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, du)
}

// Version is GET /version.
func (c *Client) Version(ctx context.Context) (VersionResponse, error) {
	var out VersionResponse
	err := c.call(ctx, http.MethodGet, "/version", nil, nil, &out)
	return out, err
}

// Info is GET /info.
func (c *Client) Info(ctx context.Context) (Info, error) {
	var out Info
	err := c.call(ctx, http.MethodGet, "/info", nil, nil, &out)
	return out, err
}

// DiskUsage is GET /system/df.
func (c *Client) DiskUsage(ctx context.Context) (DiskUsage, error) {
	var out DiskUsage
	err := c.call(ctx, http.MethodGet, "/system/df", nil, nil, &out)
	return out, err
}
