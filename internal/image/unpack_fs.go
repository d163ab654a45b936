package image

// The file-system side of Unpack: walking inside the layer without following links, owners,
// modes and times, and removing what a refused layer wrote.

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// walk opens the directory rel from the layer's root one component at a time, creating missing
// ones (0755, like tar) if create is set. A symlink on the way is refused: this is what keeps a
// layer with "link -> /etc" and then "link/passwd" off the host. The caller closes the result.
func (u *layerUnpacker) walk(entry, rel string, create bool) (int, error) {
	fd, err := layerOpen(u.root, ".", unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil || rel == "." {
		return fd, layerErr(entry, "opening the layer's root", err)
	}
	done := ""
	for _, comp := range strings.Split(rel, "/") {
		done = path.Join(done, comp)
		next, err := layerOpen(fd, comp, unix.O_RDONLY|unix.O_DIRECTORY, 0)
		if err == unix.ENOENT && create {
			if err = unix.Mkdirat(fd, comp, 0o700); err == nil {
				if next, err = layerOpen(fd, comp, unix.O_RDONLY|unix.O_DIRECTORY, 0); err == nil {
					if err = unix.Fchmod(next, 0o755); err != nil { // 0755 whatever the umask
						unix.Close(next)
					}
				}
			}
		}
		var st unix.Stat_t
		isLink := err == unix.ELOOP || err == unix.ENOTDIR && // O_DIRECTORY's error for a symlink
			unix.Fstatat(fd, comp, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK
		unix.Close(fd)
		switch {
		case isLink:
			return -1, layerRefuse(entry, "would be written through the symbolic link %q; a layer may not write through its own links", done)
		case err == unix.ENOTDIR:
			return -1, layerRefuse(entry, "is inside %q, which the layer made something other than a directory", done)
		case err == unix.EXDEV:
			return -1, layerRefuse(entry, "is inside %q, which is another mount", done)
		case err != nil:
			return -1, layerErr(entry, fmt.Sprintf("opening directory %q", done), err)
		}
		fd = next
	}
	return fd, nil
}

// layerOpen opens the single component name in the directory dirFd without following a symlink.
func layerOpen(dirFd int, name string, flags uint64, mode uint64) (int, error) {
	how := &unix.OpenHow{Flags: flags | unix.O_CLOEXEC | unix.O_NOFOLLOW, Resolve: layerResolve}
	if flags&unix.O_CREAT != 0 {
		how.Mode = mode // openat2 rejects a mode without O_CREAT
	}
	for {
		fd, err := unix.Openat2(dirFd, name, how)
		if err != unix.EINTR && err != unix.EAGAIN {
			return fd, err
		}
	}
}

// layerFdOwnerMode applies the header's owner, then its mode: in that order because chown clears
// the setuid and setgid bits, which images legitimately carry (su, passwd).
func layerFdOwnerMode(hdr *tar.Header, fd int) error {
	if err := unix.Fchown(fd, hdr.Uid, hdr.Gid); err != nil {
		return layerErr(hdr.Name, "setting the owner", err)
	}
	return layerErr(hdr.Name, "setting the mode", unix.Fchmod(fd, uint32(hdr.Mode)&0o7777))
}

func layerTimespecs(hdr *tar.Header) []unix.Timespec {
	atime := hdr.AccessTime
	if atime.IsZero() {
		atime = hdr.ModTime
	}
	return []unix.Timespec{
		{Sec: atime.Unix(), Nsec: int64(atime.Nanosecond())},
		{Sec: hdr.ModTime.Unix(), Nsec: int64(hdr.ModTime.Nanosecond())},
	}
}

// layerTimes sets a non-directory's times, unless err says the entry already failed.
func layerTimes(hdr *tar.Header, parent int, base string, err error) error {
	if err != nil {
		return err
	}
	return layerErr(hdr.Name, "setting the times", unix.UtimesNanoAt(parent, base, layerTimespecs(hdr), unix.AT_SYMLINK_NOFOLLOW))
}

// cleanup empties the layer's directory after a failure and restores its attributes (a "./" entry
// or a top-level opaque marker may have changed them).
func (u *layerUnpacker) cleanup(orig *unix.Stat_t) error {
	names, err := layerListNames(u.root)
	errs := []error{err}
	for _, name := range names {
		errs = append(errs, layerRemoveAll(u.root, name))
	}
	if err := unix.Fremovexattr(u.root, layerOpaqueXattr); err != nil && err != unix.ENODATA {
		errs = append(errs, err)
	}
	errs = append(errs, unix.Fchown(u.root, int(orig.Uid), int(orig.Gid)), unix.Fchmod(u.root, orig.Mode&0o7777))
	return errors.Join(errs...)
}

// layerListNames lists dirFd through a descriptor of its own, leaving dirFd's offset alone.
func layerListNames(dirFd int) ([]string, error) {
	fd, err := layerOpen(dirFd, ".", unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), ".")
	defer f.Close()
	return f.Readdirnames(-1)
}

// layerRemoveAll removes name in dirFd and all below it, following no symlink.
func layerRemoveAll(dirFd int, name string) error {
	err := unix.Unlinkat(dirFd, name, 0)
	if err == nil || err == unix.ENOENT {
		return nil
	} else if err != unix.EISDIR {
		return err
	}
	fd, err := layerOpen(dirFd, name, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return err
	}
	names, err := layerListNames(fd)
	for i := 0; err == nil && i < len(names); i++ {
		err = layerRemoveAll(fd, names[i])
	}
	unix.Close(fd)
	if err != nil {
		return err
	}
	return unix.Unlinkat(dirFd, name, unix.AT_REMOVEDIR)
}

// layerReader counts the zero bytes that end what has been read, to see the end-of-archive marker.
type layerReader struct {
	r        io.Reader
	zeroTail int64
}

func (l *layerReader) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	i := n
	for i > 0 && p[i-1] == 0 {
		i--
	}
	if i > 0 {
		l.zeroTail = 0
	}
	l.zeroTail += int64(n - i)
	return n, err
}
