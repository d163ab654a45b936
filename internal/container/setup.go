package container

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// prepareContainer moves the calling thread (locked, and discarded afterwards: see
// onTaintedThread) into the container: new mount and UTS namespaces, the given network
// namespace, the per-container /etc files, the hostname, the root and the working directory.
// It returns the resolved command, its environment and the new mount namespace; a process
// started from this thread then inherits all of it. The mounts live in the new mount namespace
// only, so they vanish with the container's last process and need no cleanup.
func prepareContainer(spec *Spec, logger *slog.Logger) (path string, env []string, cred *syscall.Credential, mnt nsID, err error) {
	var netns *os.File
	if spec.NetNSPath != "" {
		if netns, err = os.Open(spec.NetNSPath); err != nil {
			return "", nil, nil, mnt, fmt.Errorf("opening network namespace: %w", err)
		}
		defer netns.Close()
	}
	// CLONE_NEWNS implies CLONE_FS, which gives this thread a root and cwd of its own.
	if err := unix.Unshare(unix.CLONE_NEWNS | unix.CLONE_NEWUTS); err != nil {
		return "", nil, nil, mnt, fmt.Errorf("creating mount and UTS namespaces: %w", err)
	}
	// Identified while /proc is still at hand (a rootfs may have none).
	if mnt, err = threadNS("mnt"); err != nil {
		return "", nil, nil, mnt, err
	}
	if netns != nil {
		if err := unix.Setns(int(netns.Fd()), unix.CLONE_NEWNET); err != nil {
			return "", nil, nil, mnt, fmt.Errorf("joining network namespace %s: %w", spec.NetNSPath, err)
		}
	}
	// Without this our mounts would propagate back to the host's shared mounts.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return "", nil, nil, mnt, fmt.Errorf("making the container's mounts private: %w", err)
	}

	root := "/"
	if spec.Rootfs != "" {
		root = spec.Rootfs
		if fi, err := os.Stat(root); err != nil || !fi.IsDir() {
			return "", nil, nil, mnt, fmt.Errorf("rootfs %q is not a directory", root)
		}
	}
	for _, b := range []struct{ src, target string }{
		{spec.HostsPath, "/etc/hosts"},
		{spec.ResolvConfPath, "/etc/resolv.conf"},
		{spec.HostnamePath, "/etc/hostname"},
	} {
		if b.src == "" {
			continue
		}
		if err := bindFile(root, b.src, b.target, spec.Rootfs != "", logger); err != nil {
			return "", nil, nil, mnt, err
		}
	}
	if spec.Rootfs != "" {
		if err := mountRootfsFilesystems(root); err != nil {
			return "", nil, nil, mnt, err
		}
	} else if spec.NetNSPath != "" {
		if err := remountSys(); err != nil {
			return "", nil, nil, mnt, err
		}
	}

	if spec.Hostname != "" {
		if err := unix.Sethostname([]byte(spec.Hostname)); err != nil {
			return "", nil, nil, mnt, fmt.Errorf("setting hostname %q: %w", spec.Hostname, err)
		}
	}
	if spec.Domainname != "" {
		if err := unix.Setdomainname([]byte(spec.Domainname)); err != nil {
			return "", nil, nil, mnt, fmt.Errorf("setting domain name %q: %w", spec.Domainname, err)
		}
	}
	if spec.Rootfs != "" {
		if err := unix.Chroot(root); err != nil {
			return "", nil, nil, mnt, fmt.Errorf("changing root to %s: %w", root, err)
		}
	}
	if err := enterWorkingDir(spec.WorkingDir); err != nil {
		return "", nil, nil, mnt, err
	}
	cred, home, err := resolveUser(spec.User)
	if err != nil {
		return "", nil, nil, mnt, err
	}
	env = withDefaults(spec.Env, home)
	pathEnv, _ := lookupEnv(env, "PATH")
	path, err = lookPath(spec.Args[0], pathEnv)
	return path, env, cred, mnt, err
}

// enterWorkingDir changes to dir ("/" if empty) relative to the thread's root.
func enterWorkingDir(dir string) error {
	if dir == "" {
		dir = "/"
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("changing to /: %w", err)
	}
	if err := unix.Chdir(dir); err != nil {
		return &StartError{Code: 126, Msg: fmt.Sprintf("chdir to working directory %q: %v", dir, err)}
	}
	return nil
}

// openInRoot opens path as if root were "/": absolute symlinks in a rootfs (etc/resolv.conf ->
// /run/...) resolve inside it rather than on the host.
func openInRoot(root, path string, flags uint64, mode uint64) (*os.File, error) {
	rootFd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(rootFd)
	how := &unix.OpenHow{Flags: flags | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT}
	if flags&unix.O_CREAT != 0 {
		// openat2 rejects a mode without O_CREAT.
		how.Mode = mode
	}
	rel := strings.TrimLeft(path, "/")
	if rel == "" {
		rel = "."
	}
	fd, err := unix.Openat2(rootFd, rel, how)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: filepath.Join(root, path), Err: err}
	}
	return os.NewFile(uintptr(fd), filepath.Join(root, path)), nil
}

// mountOn mounts onto an open file through its /proc/self/fd link, so that the target is the
// file openInRoot found and not whatever a path resolves to by now.
func mountOn(f *os.File, source, fstype string, flags uintptr) error {
	return unix.Mount(source, fmt.Sprintf("/proc/self/fd/%d", f.Fd()), fstype, flags, "")
}

// bindFile bind-mounts src over target inside root. A rootfs lacking the target gets an empty
// file to mount over; on the host's filesystem a missing target is skipped rather than created,
// since that would change the host.
func bindFile(root, src, target string, createMissing bool, logger *slog.Logger) error {
	if _, err := os.Stat(src); err != nil {
		return fmt.Errorf("file to mount over %s: %w", target, err)
	}
	flags := uint64(unix.O_PATH)
	if createMissing {
		flags = unix.O_RDONLY | unix.O_CREAT
		if err := ensureDirInRoot(root, filepath.Dir(target)); err != nil {
			return err
		}
	}
	dst, err := openInRoot(root, target, flags, 0o644)
	if errors.Is(err, os.ErrNotExist) && !createMissing {
		logger.Warn("not mounting over a file the host lacks", "target", target, "source", src)
		return nil
	}
	if err != nil {
		return fmt.Errorf("opening %s to mount over: %w", target, err)
	}
	defer dst.Close()
	if err := mountOn(dst, src, "", unix.MS_BIND); err != nil {
		return fmt.Errorf("bind-mounting %s over %s: %w", src, target, err)
	}
	return nil
}

func ensureDirInRoot(root, dir string) error {
	d, err := openInRoot(root, dir, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err == nil {
		d.Close()
		return nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("opening %s in rootfs: %w", dir, err)
	}
	parent, err := openInRoot(root, filepath.Dir(dir), unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return fmt.Errorf("creating %s in rootfs: %w", dir, err)
	}
	defer parent.Close()
	if err := unix.Mkdirat(int(parent.Fd()), filepath.Base(dir), 0o755); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("creating %s in rootfs: %w", dir, err)
	}
	return nil
}

// mountRootfsFilesystems gives a rootfs the kernel filesystems programs expect, where the rootfs
// has a directory for them. /sys is read-only, as in Docker.
func mountRootfsFilesystems(root string) error {
	for _, m := range []struct {
		target, source, fstype string
		flags                  uintptr
	}{
		{"/proc", "proc", "proc", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC},
		{"/dev", "/dev", "", unix.MS_BIND | unix.MS_REC},
		{"/sys", "sysfs", "sysfs", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC | unix.MS_RDONLY},
	} {
		d, err := openInRoot(root, m.target, unix.O_PATH|unix.O_DIRECTORY, 0)
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ENOTDIR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("opening %s in rootfs: %w", m.target, err)
		}
		err = mountOn(d, m.source, m.fstype, m.flags)
		d.Close()
		if err != nil {
			return fmt.Errorf("mounting %s in rootfs: %w", m.target, err)
		}
	}
	return nil
}

// remountSys replaces /sys with a sysfs mounted from inside the container's network namespace:
// sysfs shows the network devices of the namespace it was mounted in, so /sys/class/net would
// otherwise list the host's interfaces (`ip netns exec` does the same).
func remountSys() error {
	var flags uintptr = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC
	var st unix.Statfs_t
	if err := unix.Statfs("/sys", &st); err == nil && st.Flags&unix.ST_RDONLY != 0 {
		flags |= unix.MS_RDONLY
	}
	if err := unix.Unmount("/sys", unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("unmounting the host's /sys in the container: %w", err)
	}
	if err := unix.Mount("sysfs", "/sys", "sysfs", flags, ""); err != nil {
		return fmt.Errorf("mounting the container's /sys: %w", err)
	}
	return nil
}
