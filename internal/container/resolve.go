package container

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// withDefaults completes a process's environment the way runc does for Docker: a PATH to find
// the command with, and HOME (the user's, /root for root).
func withDefaults(env []string, home string) []string {
	out := append([]string(nil), env...)
	if _, ok := lookupEnv(env, "PATH"); !ok {
		out = append(out, "PATH="+defaultPath)
	}
	if _, ok := lookupEnv(env, "HOME"); !ok {
		out = append(out, "HOME="+home)
	}
	return out
}

// lookupEnv returns the last value of key, which is the one a process sees.
func lookupEnv(env []string, key string) (string, bool) {
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], key+"="); ok {
			return v, true
		}
	}
	return "", false
}

// lookPath finds name as a process with PATH=path would, relative to the calling thread's root
// and working directory (which are the container's by the time it is called). The errors read
// like Docker's: `exec: "x": executable file not found in $PATH`.
func lookPath(name, path string) (string, error) {
	if strings.Contains(name, "/") {
		if err := checkExecutable(name); err != nil {
			return "", startErrorFor(name, err)
		}
		return name, nil
	}
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, name)
		if checkExecutable(p) == nil {
			return p, nil
		}
	}
	return "", startErrorFor(name, exec.ErrNotFound)
}

func checkExecutable(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return syscall.EISDIR
	}
	if fi.Mode()&0o111 == 0 {
		return fs.ErrPermission
	}
	return nil
}

// startErrorFor wraps why name cannot be run, with the exit code a shell (and Docker) would give.
func startErrorFor(name string, err error) *StartError {
	code := 126
	if errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) {
		code = 127
	}
	return &StartError{Code: code, Msg: (&exec.Error{Name: name, Err: err}).Error()}
}

// startProcess starts path in a new session (so that signals meant for the caller's process
// group never reach it), with files as its fds 0, 1, 2 and, when tty, fd 0 as its controlling
// terminal. It starts from the calling thread, whose namespaces, root and working directory the
// process inherits.
func startProcess(path string, args, env []string, files []*os.File, tty bool, cred *syscall.Credential) (*os.Process, error) {
	p, err := os.StartProcess(path, args, &os.ProcAttr{
		Env:   env,
		Files: files,
		Sys:   &syscall.SysProcAttr{Setsid: true, Setctty: tty, Ctty: 0, Credential: cred},
	})
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, startErrorFor(args[0], err)
	}
	return p, nil
}

// onTaintedThread runs fn on an OS thread of its own that fn may move into other namespaces,
// another root or working directory: the thread is never unlocked, so the runtime discards it
// when fn returns instead of running other goroutines in the wrong namespaces.
//
// This is also how a multi-threaded Go process can enter a mount namespace at all: setns(2)
// refuses CLONE_NEWNS only while the thread shares its filesystem context (root, cwd) with the
// other threads, and unshare(CLONE_FS) ends that sharing for this one thread.
func onTaintedThread(fn func()) {
	done := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		if unix.Gettid() == unix.Getpid() {
			// The main thread is never discarded, only parked, and it is what /proc/PID/ns/*
			// shows for the whole process. Hold it, so that the runtime must pick another
			// thread for fn, and let it go again untouched.
			defer runtime.UnlockOSThread()
			defer close(done)
			onTaintedThread(fn)
			return
		}
		defer close(done)
		fn()
	}()
	<-done
}
