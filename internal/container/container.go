// Package container runs a cnet container's process: a process tree from the host's filesystem
// (or a chroot) that joins a network namespace the daemon prepared and gets UTS and mount
// namespaces of its own, where the daemon-written /etc/hosts, /etc/resolv.conf and /etc/hostname
// are bind-mounted.
//
// Each container is owned by a detached shim process (`cnet shim DIR`) so that it outlives both
// the CLI and the daemon: the daemon may be killed and restarted and still find the container
// running, signal it, attach to it and read how it ended. Everything the daemon and the shim
// share lives in the container's directory DIR:
//
//	config.json  the Spec, written by Start
//	pid          the container process's pid, while it runs
//	attach.sock  the shim's attach socket, while the process runs
//	log          the output so far (frames, or raw with a tty)
//	exit.json    the ExitStatus, once the process ended
//	shim.log     the shim's own errors
package container

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/cnet-dev/cnet/internal/errdefs"
	"github.com/cnet-dev/cnet/internal/faults"
)

// Names of the files in a container's directory.
const (
	configFile  = "config.json"
	pidFile     = "pid"
	attachSock  = "attach.sock"
	logFile     = "log"
	exitFile    = "exit.json"
	shimLogFile = "shim.log"
)

// Spec is what a container's process is started with. It is written as DIR/config.json.
type Spec struct {
	ID string
	// Args[0] is resolved in PATH (from Env, or the default PATH) inside the container's root.
	Args       []string
	Env        []string
	WorkingDir string // default "/"
	Hostname   string
	Domainname string
	// Tty allocates a pseudo-terminal; the output is then raw rather than framed.
	Tty bool
	// ConsoleSize is the terminal's first size, rows and columns (the client's, so that the
	// process sees it from its first instruction); zero is Docker's 24x80.
	ConsoleSize [2]uint16 `json:",omitempty"`
	// OpenStdin feeds the process's stdin from attach connections; otherwise it is /dev/null.
	OpenStdin bool
	// Attach makes the shim wait (up to attachWait) for one attach connection before it starts
	// the process, so that a foreground client loses no output.
	Attach bool
	// NetNSPath is the network namespace file to join; "" stays in the shim's (--net host).
	NetNSPath string
	// Host-side files bind-mounted over /etc/hosts, /etc/resolv.conf and /etc/hostname; "" = none.
	HostsPath, ResolvConfPath, HostnamePath string
	// User runs the process as name, uid, name:group or uid:gid, looked up in the container's
	// /etc/passwd and /etc/group; "" is root.
	User string `json:",omitempty"`
	// Rootfs, if set, is chrooted into, with proc, /dev and sysfs mounted where it has those
	// directories; "" runs on the host's filesystem.
	Rootfs string
}

// Process identifies a running shim. StartTime (field 22 of /proc/PID/stat) tells the shim
// apart from an unrelated process that got its pid after it ended, which matters once a
// restarted daemon reloads pids from disk.
type Process struct {
	ShimPid   int
	StartTime uint64
}

// ExitStatus is what the shim records in DIR/exit.json when the container's process ends.
type ExitStatus struct {
	// Code is the exit code, 128+N for a process killed by signal N (as Docker reports it).
	Code       int
	FinishedAt time.Time
	// Error says why the process could not be started, when the shim found out only after
	// Start returned (Spec.Attach).
	Error string `json:",omitempty"`
}

// StartError reports a command that could not be started, with the exit code Docker gives for
// it: 127 when the executable does not exist, 126 when it cannot be run.
type StartError struct {
	Code int
	Msg  string
}

func (e *StartError) Error() string { return e.Msg }

// ErrNotRunning is returned (wrapped) when an operation needs the container's process and it has
// ended or was never started.
var ErrNotRunning = errdefs.Conflict("container is not running")

// handshake is the one message a shim sends to Start over its fd 3.
type handshake struct {
	Error string `json:",omitempty"`
	Code  int    `json:",omitempty"` // StartError.Code; 0 for other errors
}

// Start writes DIR/config.json and launches `cnet shim DIR` detached from the caller (own
// session, stdio on /dev/null, errors to DIR/shim.log). It returns once the shim has started the
// process or, with spec.Attach, listens on DIR/attach.sock. When the command cannot be started,
// the error says why (a *StartError for a missing or non-executable command) and the shim has
// already exited and been reaped.
func Start(dir string, spec Spec) (Process, error) {
	if len(spec.Args) == 0 {
		return Process{}, errdefs.Invalid("no command specified")
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return Process{}, fmt.Errorf("resolving container directory: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Process{}, fmt.Errorf("creating container directory: %w", err)
	}
	// A restarted container must not be mistaken for still running or already ended.
	for _, name := range []string{pidFile, exitFile, attachSock} {
		if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return Process{}, fmt.Errorf("clearing state of the previous run: %w", err)
		}
	}
	if err := writeJSONAtomic(filepath.Join(dir, configFile), spec); err != nil {
		return Process{}, err
	}

	shimLog, err := os.OpenFile(filepath.Join(dir, shimLogFile), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return Process{}, fmt.Errorf("opening shim log: %w", err)
	}
	defer shimLog.Close()
	devNull, err := os.Open(os.DevNull)
	if err != nil {
		return Process{}, fmt.Errorf("opening %s: %w", os.DevNull, err)
	}
	defer devNull.Close()
	hsRead, hsWrite, err := os.Pipe()
	if err != nil {
		return Process{}, fmt.Errorf("creating shim handshake pipe: %w", err)
	}
	defer hsRead.Close()

	argv0, err := os.Executable()
	if err != nil {
		argv0 = "cnet"
	}
	// /proc/self/exe rather than argv0's path keeps working when the binary was replaced on
	// disk (an upgrade) while the daemon runs.
	shim, err := os.StartProcess("/proc/self/exe", []string{argv0, "shim", dir}, &os.ProcAttr{
		Dir:   "/",
		Files: []*os.File{devNull, devNull, shimLog, hsWrite},
		Sys:   &syscall.SysProcAttr{Setsid: true},
	})
	hsWrite.Close()
	if err != nil {
		return Process{}, fmt.Errorf("starting container shim: %w", err)
	}
	faults.Point("shim-forked")

	msg, readErr := io.ReadAll(hsRead)
	var hs handshake
	if readErr == nil && len(msg) > 0 {
		readErr = json.Unmarshal(msg, &hs)
	}
	if readErr != nil || len(msg) == 0 || hs.Error != "" {
		// The shim exits after reporting a failure; one that reported nothing useful is killed.
		// Either way it is reaped here so that no shim remains.
		if readErr != nil || len(msg) == 0 {
			_ = shim.Kill()
		}
		_, _ = shim.Wait()
		switch {
		case hs.Error != "" && hs.Code != 0:
			return Process{}, &StartError{Code: hs.Code, Msg: hs.Error}
		case hs.Error != "":
			return Process{}, errors.New(hs.Error)
		default:
			return Process{}, fmt.Errorf("container shim exited before starting the process; see %s",
				filepath.Join(dir, shimLogFile))
		}
	}

	pid := shim.Pid
	st, err := readStat(pid)
	if err != nil {
		_ = shim.Kill()
		_, _ = shim.Wait()
		return Process{}, fmt.Errorf("reading container shim's start time: %w", err)
	}
	// Watch reaps the shim through a pidfd; the os.Process handle is not needed any more.
	_ = shim.Release()
	return Process{ShimPid: pid, StartTime: st.startTime}, nil
}

// ReadExit returns the recorded exit status; ok is false if the shim has not recorded one (still
// running, or killed before it could).
func ReadExit(dir string) (ExitStatus, bool) {
	b, err := os.ReadFile(filepath.Join(dir, exitFile))
	if err != nil {
		return ExitStatus{}, false
	}
	var st ExitStatus
	if err := json.Unmarshal(b, &st); err != nil {
		return ExitStatus{}, false
	}
	return st, true
}

// Pid returns the container process's pid, 0 if it has not started or has ended.
func Pid(dir string) int {
	b, err := os.ReadFile(filepath.Join(dir, pidFile))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(string(b))
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}

// writeJSONAtomic replaces path with v's JSON so that a reader (or a crash) never sees a
// half-written file.
func writeJSONAtomic(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding %s: %w", filepath.Base(path), err)
	}
	return writeFileAtomic(path, append(b, '\n'))
}

func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
