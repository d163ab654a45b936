// Layer unpacking: one OCI image layer (a "changeset over tar", image-spec layer.md) turned into
// a directory that overlayfs can stack as a lower layer of a container's root.
//
// A layer comes from a registry, so its tar stream is untrusted input. Every write is confined to
// the layer's directory by never handing the kernel a path of more than one component: each
// directory is reached from the layer's root one component at a time with openat2
// (RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|RESOLVE_NO_XDEV), and each entry is then created relative
// to its parent's file descriptor with *at calls that never follow a symlink in the last
// component. A symlink in the layer may point anywhere (it is resolved inside the container's root
// at run time), but nothing is ever written through one while unpacking.

package image

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

// ErrLayerRefused marks a layer refused for what it asks for (a path outside its root, a write
// through a symlink, a device node...), not for an I/O failure: retrying cannot help.
var ErrLayerRefused = errors.New("image layer refused")

const (
	layerWhiteoutPrefix = ".wh."         // deletes the rest of the name from lower layers
	layerWhiteoutMeta   = ".wh..wh."     // AUFS bookkeeping in old Docker layers, nothing to overlayfs
	layerOpaqueMarker   = ".wh..wh..opq" // its directory hides all that lower layers have in it
	layerOpaqueXattr    = "trusted.overlay.opaque"
	// layerResolve confines an open to the directory it starts from: no symlink followed (ELOOP
	// instead), no "..", no magic /proc links, no other mount.
	layerResolve = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV
)

// Unpack applies one image layer (an uncompressed tar stream, as v1.Layer.Uncompressed() gives)
// into the empty directory dir, in the form overlayfs reads as a lower layer: OCI whiteouts become
// 0:0 character devices and opaque markers the trusted.overlay.opaque xattr.
//
// A layer that is hostile (see ErrLayerRefused), truncated or that cannot be written (a full
// disk) leaves dir empty: a layer is stored whole or not at all, so the store never mounts half
// of one. dir must be empty on entry, so that removing everything in it on failure removes only
// what Unpack wrote. The stream is read to its end, so that a digest-verifying reader under r
// gets to check the whole layer.
func Unpack(r io.Reader, dir string) error {
	root, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening the layer directory: %w", &os.PathError{Op: "open", Path: dir, Err: err})
	}
	defer unix.Close(root)
	var orig unix.Stat_t
	names, err := layerListNames(root)
	if err == nil {
		err = unix.Fstat(root, &orig)
	}
	if err != nil {
		return fmt.Errorf("reading the layer directory %s: %w", dir, err)
	}
	if len(names) > 0 {
		return fmt.Errorf("unpacking a layer into %s: the directory is not empty (it holds %q); a layer goes into a fresh directory so that a failed unpack can be removed whole", dir, names[0])
	}
	u := &layerUnpacker{root: root, cacheFd: -1}
	err = u.run(r)
	u.closeCache()
	if err != nil {
		if cerr := u.cleanup(&orig); cerr != nil {
			err = errors.Join(err, fmt.Errorf("removing the partly unpacked layer from %s (remove it by hand): %w", dir, cerr))
		}
	}
	return err
}

type layerUnpacker struct {
	root int // the layer's directory

	// The last entry's parent directory, which a tar stream's next entries mostly share. Only
	// its children are ever removed (an entry replacing an earlier one), so it stays valid.
	cacheFd  int
	cacheRel string

	dirTimes []layerDirTime // set last: creating a directory's children changes its mtime
}

type layerDirTime struct {
	rel   string
	times []unix.Timespec
}

// layerRefuse builds the error for an entry cnet will not unpack, naming it for the image's author.
func layerRefuse(entry, format string, args ...any) error {
	return fmt.Errorf("%w: entry %q %s", ErrLayerRefused, entry, fmt.Sprintf(format, args...))
}

// layerErr wraps a system call's failure (nil stays nil) with what was being done and the entry.
func layerErr(entry, doing string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s for layer entry %q: %w", doing, entry, err)
}

func (u *layerUnpacker) run(r io.Reader) error {
	lr := &layerReader{r: r}
	tr := tar.NewReader(lr)
	where := "at its start"
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		// With GODEBUG=tarinsecurepath=0 such a path comes with its header; entry refuses it.
		if err != nil && !(hdr != nil && errors.Is(err, tar.ErrInsecurePath)) {
			return fmt.Errorf("reading the layer's tar stream %s (truncated, or not a tar archive?): %w", where, err)
		}
		where = fmt.Sprintf("after entry %q", hdr.Name)
		if err := u.entry(tr, hdr); err != nil {
			return err
		}
	}
	// archive/tar takes a stream that simply stops between entries for a whole archive; the
	// end-of-archive marker (two zero blocks) is what tells a whole layer from a cut one.
	if lr.zeroTail < 1024 {
		return fmt.Errorf("reading the layer's tar stream %s: it ends without tar's end-of-archive marker (truncated?): %w", where, io.ErrUnexpectedEOF)
	}
	if _, err := io.Copy(io.Discard, lr); err != nil {
		return fmt.Errorf("reading the rest of the layer stream after its end-of-archive marker: %w", err)
	}
	for _, d := range u.dirTimes {
		fd, err := u.walk(d.rel, d.rel, false)
		if err != nil {
			return err
		}
		err = unix.UtimesNanoAt(fd, ".", d.times, 0)
		unix.Close(fd)
		if err != nil {
			return layerErr(d.rel, "setting the times", err)
		}
	}
	return nil
}

// layerCleanPath turns a tar path into one relative to the layer's root ("." for the root), or
// says what is wrong with it. Cleaning is lexical: the kernel never sees a "..".
func layerCleanPath(name string) (rel, problem string) {
	switch {
	case strings.IndexByte(name, 0) >= 0:
		return "", "has a NUL byte in its name"
	case len(name) >= unix.PathMax:
		return "", fmt.Sprintf("has a name of %d bytes, longer than a path can be", len(name))
	case path.IsAbs(name):
		return "", "is an absolute path; entries of a layer are relative to its root"
	}
	rel = path.Clean(name)
	if rel == ".." || strings.HasPrefix(rel, "../") {
		return "", "escapes the layer's root"
	}
	return rel, ""
}

// layerSplit splits a cleaned path into its directory ("." at the top) and last name.
func layerSplit(rel string) (dir, base string) {
	dir, base = path.Split(rel)
	return path.Clean(dir), base
}

// entry applies one tar entry.
func (u *layerUnpacker) entry(tr io.Reader, hdr *tar.Header) error {
	if hdr.Typeflag == tar.TypeXGlobalHeader {
		return nil // PAX defaults for later entries, already merged by archive/tar
	}
	name := hdr.Name
	rel, problem := layerCleanPath(name)
	if problem != "" {
		return layerRefuse(name, "%s", problem)
	}
	if strings.IndexByte(hdr.Linkname, 0) >= 0 {
		return layerRefuse(name, "has a NUL byte in its link target")
	}
	if hdr.Uid < 0 || hdr.Gid < 0 || int64(hdr.Uid) > 1<<32-2 || int64(hdr.Gid) > 1<<32-2 {
		return layerRefuse(name, "has an invalid owner %d:%d", hdr.Uid, hdr.Gid)
	}
	for key := range hdr.PAXRecords {
		if x, ok := strings.CutPrefix(key, "SCHILY.xattr."); ok &&
			(strings.HasPrefix(x, "trusted.overlay.") || strings.HasPrefix(x, "user.overlay.")) {
			return layerRefuse(name, "carries the overlayfs attribute %q, which would change how overlayfs reads the layer", x)
		}
	}
	dir, base := layerSplit(rel)
	comps := strings.Split(rel, "/")
	for i, comp := range comps {
		if strings.HasPrefix(comp, layerWhiteoutMeta) && comp != layerOpaqueMarker {
			return nil // AUFS bookkeeping
		}
		if strings.HasPrefix(comp, layerWhiteoutPrefix) && i < len(comps)-1 {
			return layerRefuse(name, "is inside %q; names starting with %q are whiteouts, not directories", comp, layerWhiteoutPrefix)
		}
	}
	// A whiteout is known by its name, whatever its type (some tools write them as hard links).
	if base == layerOpaqueMarker {
		fd, err := u.parent(name, dir)
		if err != nil {
			return err
		}
		// This layer's own entries in dir, before or after the marker, stay.
		return layerErr(name, "marking the directory opaque ("+layerOpaqueXattr+")", unix.Fsetxattr(fd, layerOpaqueXattr, []byte("y"), 0))
	}
	if target, ok := strings.CutPrefix(base, layerWhiteoutPrefix); ok {
		return u.whiteout(name, dir, target)
	}
	if rel == "." && hdr.Typeflag != tar.TypeDir {
		return layerRefuse(name, "names the layer's root but is not a directory")
	}

	switch hdr.Typeflag {
	case tar.TypeDir:
		return u.directory(hdr, rel)
	case tar.TypeReg, tar.TypeGNUSparse: // archive/tar fills a sparse file's holes with zeros
		return u.regular(tr, hdr, rel)
	case tar.TypeSymlink:
		parent, base, err := u.create(hdr, rel)
		if err == nil {
			err = layerErr(name, "creating the symlink", unix.Symlinkat(hdr.Linkname, parent, base))
		}
		if err == nil {
			err = layerErr(name, "setting the owner", unix.Fchownat(parent, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW))
		}
		return layerTimes(hdr, parent, base, err)
	case tar.TypeLink:
		return u.hardlink(hdr, rel)
	case tar.TypeFifo:
		parent, base, err := u.create(hdr, rel)
		if err == nil {
			err = layerErr(name, "creating the FIFO", unix.Mknodat(parent, base, unix.S_IFIFO|0o600, 0))
		}
		if err == nil { // opened read-only and non-blocking, so as not to wait for a writer
			var fd int
			if fd, err = layerOpen(parent, base, unix.O_RDONLY|unix.O_NONBLOCK, 0); err != nil {
				err = layerErr(name, "opening the FIFO", err)
			} else {
				err = layerFdOwnerMode(hdr, fd)
				unix.Close(fd)
			}
		}
		return layerTimes(hdr, parent, base, err)
	case tar.TypeChar, tar.TypeBlock:
		kind := "character"
		if hdr.Typeflag == tar.TypeBlock {
			kind = "block"
		}
		return layerRefuse(name, "is a %s device (%d:%d); image layers may not carry device nodes, containers get /dev from the runtime", kind, hdr.Devmajor, hdr.Devminor)
	default:
		return layerRefuse(name, "has tar entry type %q, which is not a file type an image layer holds", hdr.Typeflag)
	}
}

// parent returns a descriptor of the directory rel, created if missing; it belongs to u.
func (u *layerUnpacker) parent(entry, rel string) (int, error) {
	if u.cacheFd >= 0 && u.cacheRel == rel {
		return u.cacheFd, nil
	}
	fd, err := u.walk(entry, rel, true)
	if err != nil {
		return -1, err
	}
	u.closeCache()
	u.cacheFd, u.cacheRel = fd, rel
	return fd, nil
}

func (u *layerUnpacker) closeCache() {
	if u.cacheFd >= 0 {
		unix.Close(u.cacheFd)
		u.cacheFd = -1
	}
}

// replace removes what an earlier entry left at rel (in parent): per the spec a later entry
// replaces it, unless both are directories.
func (u *layerUnpacker) replace(entry string, parent int, rel string) error {
	err := unix.Unlinkat(parent, path.Base(rel), 0)
	if err == nil || err == unix.ENOENT {
		return nil // a non-directory, or nothing (the usual case)
	} else if err == unix.EISDIR {
		err = layerRemoveAll(parent, path.Base(rel))
	}
	if err != nil {
		return layerErr(entry, "removing the earlier entry for the path", err)
	}
	kept := u.dirTimes[:0]
	for _, d := range u.dirTimes {
		if d.rel != rel && !strings.HasPrefix(d.rel, rel+"/") {
			kept = append(kept, d)
		}
	}
	u.dirTimes = kept
	return nil
}

// create makes room for a non-directory entry: its parent, and nothing at its name.
func (u *layerUnpacker) create(hdr *tar.Header, rel string) (parent int, base string, err error) {
	dir, base := layerSplit(rel)
	if parent, err = u.parent(hdr.Name, dir); err == nil {
		err = u.replace(hdr.Name, parent, rel)
	}
	return parent, base, err
}

func (u *layerUnpacker) directory(hdr *tar.Header, rel string) error {
	dir, base := layerSplit(rel)
	parent, err := u.parent(hdr.Name, dir)
	if err != nil {
		return err
	}
	// For the root, base is "." and this opens parent again.
	fd, err := layerOpen(parent, base, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	wasWhiteout := false
	if err == unix.ENOENT || err == unix.ENOTDIR || err == unix.ELOOP {
		var st unix.Stat_t
		wasWhiteout = unix.Fstatat(parent, base, &st, unix.AT_SYMLINK_NOFOLLOW) == nil &&
			st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0
		if err = u.replace(hdr.Name, parent, rel); err != nil {
			return err
		}
		if err = unix.Mkdirat(parent, base, 0o700); err == nil {
			fd, err = layerOpen(parent, base, unix.O_RDONLY|unix.O_DIRECTORY, 0)
		}
	}
	if err != nil {
		return layerErr(hdr.Name, "creating the directory", err)
	}
	defer unix.Close(fd)
	// A whiteout replaced by a directory means "deleted, then made anew": in overlayfs terms an
	// opaque directory, or the lower one's contents would show through.
	if wasWhiteout {
		if err := unix.Fsetxattr(fd, layerOpaqueXattr, []byte("y"), 0); err != nil {
			return layerErr(hdr.Name, "marking the directory opaque", err)
		}
	}
	u.dirTimes = append(u.dirTimes, layerDirTime{rel: rel, times: layerTimespecs(hdr)})
	return layerFdOwnerMode(hdr, fd)
}

func (u *layerUnpacker) regular(tr io.Reader, hdr *tar.Header, rel string) error {
	parent, base, err := u.create(hdr, rel)
	if err != nil {
		return err
	}
	// Created owner-only; the header's mode is applied once the contents and owner are in place.
	fd, err := layerOpen(parent, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL, 0o600)
	if err != nil {
		return layerErr(hdr.Name, "creating the file", err)
	}
	f := os.NewFile(uintptr(fd), rel)
	defer f.Close()
	// Streamed, never held whole in memory.
	if _, err := io.Copy(f, tr); err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) && pe.Op == "write" {
			return layerErr(hdr.Name, "writing the contents", err)
		}
		return layerErr(hdr.Name, "reading the contents from the layer stream (truncated?)", err)
	}
	if err := layerFdOwnerMode(hdr, fd); err != nil {
		return err
	}
	// Last: chown and writing both drop file capabilities.
	if caps, ok := hdr.PAXRecords["SCHILY.xattr.security.capability"]; ok {
		if err := unix.Fsetxattr(fd, "security.capability", []byte(caps), 0); err != nil {
			return layerErr(hdr.Name, "setting the file capabilities", err)
		}
	}
	return layerTimes(hdr, parent, base, layerErr(hdr.Name, "writing the file", f.Close()))
}

// hardlink links to a file this layer already holds: not a lower layer's, nor the host's.
func (u *layerUnpacker) hardlink(hdr *tar.Header, rel string) error {
	target, problem := layerCleanPath(hdr.Linkname)
	if problem != "" {
		return layerRefuse(hdr.Name, "is a hard link to %q, which %s", hdr.Linkname, problem)
	}
	missing := layerRefuse(hdr.Name, "is a hard link to %q, which is not an earlier entry of this layer", hdr.Linkname)
	if target == rel {
		return missing
	}
	tdir, tbase := layerSplit(target)
	tparent, err := u.walk(hdr.Name, tdir, false)
	if errors.Is(err, unix.ENOENT) {
		return missing
	} else if err != nil {
		return err
	}
	defer unix.Close(tparent)
	var st unix.Stat_t
	if err := unix.Fstatat(tparent, tbase, &st, unix.AT_SYMLINK_NOFOLLOW); err == unix.ENOENT {
		return missing
	} else if err != nil {
		return layerErr(hdr.Name, "looking up the link's target", err)
	}
	switch {
	case target == "." || st.Mode&unix.S_IFMT == unix.S_IFDIR:
		return layerRefuse(hdr.Name, "is a hard link to the directory %q", hdr.Linkname)
	case st.Mode&unix.S_IFMT == unix.S_IFCHR:
		return layerRefuse(hdr.Name, "is a hard link to %q, a whiteout", hdr.Linkname)
	}
	parent, base, err := u.create(hdr, rel)
	if err != nil {
		return err
	}
	// Flags 0: link the target itself even if it is a symlink, never what it points to.
	if err := unix.Linkat(tparent, tbase, parent, base, 0); err == unix.ENOENT {
		return missing
	} else if err != nil {
		return layerErr(hdr.Name, "creating the hard link", err)
	}
	return nil
}

// whiteout deletes target from lower layers as overlayfs does: a 0:0 character device in its place.
func (u *layerUnpacker) whiteout(entry, dir, target string) error {
	if target == "" || target == "." || target == ".." {
		return layerRefuse(entry, "is a whiteout of no valid name")
	}
	parent, err := u.parent(entry, dir)
	if err != nil {
		return err
	}
	// A whiteout hides only lower layers' files (spec); this layer's own target stays.
	if err := unix.Mknodat(parent, target, unix.S_IFCHR, 0); err != unix.EEXIST {
		return layerErr(entry, "creating the whiteout", err)
	}
	return nil
}
