// Tests of Unpack on tar streams built in memory: the tree a normal layer gives, the overlayfs
// form of whiteouts, and hostile or broken layers, which must leave the layer's directory empty
// and everything around it untouched.

package image

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

var (
	unpackTime    = time.Date(2021, 3, 4, 5, 6, 7, 0, time.UTC)
	unpackDirTime = time.Date(2019, 1, 2, 3, 4, 5, 0, time.UTC)
)

type unpackEnt struct {
	hdr  tar.Header
	body string
}

func unpackDir(name string, mode int64) unpackEnt {
	return unpackEnt{hdr: tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: mode}}
}

func unpackFile(name string, mode int64, body string) unpackEnt {
	return unpackEnt{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode}, body: body}
}

func unpackOwned(e unpackEnt, uid, gid int) unpackEnt {
	e.hdr.Uid, e.hdr.Gid = uid, gid
	return e
}

func unpackLink(typ byte, name, target string) unpackEnt {
	return unpackEnt{hdr: tar.Header{Typeflag: typ, Name: name, Linkname: target, Mode: 0o777}}
}

func unpackNode(typ byte, name string, mode, major, minor int64) unpackEnt {
	return unpackEnt{hdr: tar.Header{Typeflag: typ, Name: name, Mode: mode, Devmajor: major, Devminor: minor}}
}

// unpackTar writes the entries as a tar stream (times default to unpackTime).
func unpackTar(t *testing.T, ents ...unpackEnt) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		h := e.hdr
		if h.ModTime.IsZero() {
			h.ModTime = unpackTime
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatalf("writing tar header %q: %v", h.Name, err)
		}
		if _, err := io.WriteString(tw, e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// unpackDirs makes base/outside (holding a file "secret") beside base/store/layers/layer, three
// levels down, so that an escape by "..", "../.." or a symlink to outside lands within base.
func unpackDirs(t *testing.T) (base, layer, outside string) {
	base = t.TempDir()
	layer = filepath.Join(base, "store", "layers", "layer")
	outside = filepath.Join(base, "outside")
	if err := os.MkdirAll(layer, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("host data"), 0o644); err != nil {
		t.Fatal(err)
	}
	return base, layer, outside
}

// unpackSnapshot describes everything under base but the layer's directory.
func unpackSnapshot(t *testing.T, base, layer string) map[string]string {
	t.Helper()
	snap := map[string]string{}
	err := filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		} else if p == layer {
			return filepath.SkipDir
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		data, _ := os.ReadFile(p)
		x, _ := unix.Lgetxattr(p, layerOpaqueXattr, make([]byte, 8))
		snap[p] = fmt.Sprintf("mode=%o owner=%d:%d nlink=%d mtime=%v xattr=%d data=%q",
			st.Mode, st.Uid, st.Gid, st.Nlink, st.Mtim, x, data)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

func unpackLstat(t *testing.T, p string) *unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	return &st
}

func unpackOpaque(p string) string {
	buf := make([]byte, 8)
	n, err := unix.Lgetxattr(p, layerOpaqueXattr, buf)
	if err != nil {
		return err.Error()
	}
	return string(buf[:n])
}

func unpackNeedRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: unpacking chowns, makes whiteout devices and sets trusted.* xattrs")
	}
}

func TestUnpackNormalLayer(t *testing.T) {
	unpackNeedRoot(t)
	_, layer, _ := unpackDirs(t)
	big := strings.Repeat("0123456789abcdef", 3<<20/16) // 3 MiB, several copy buffers
	etc := unpackDir("etc/", 0o755)
	etc.hdr.ModTime = unpackDirTime
	// File capabilities (v2, effective, cap_net_raw), which chown and writing would drop.
	caps := "\x01\x00\x00\x02\x00\x20\x00\x00" + strings.Repeat("\x00", 12)
	ping := unpackFile("bin/ping", 0o755, "ping")
	ping.hdr.PAXRecords = map[string]string{"SCHILY.xattr.security.capability": caps}
	stream := unpackTar(t,
		unpackDir("./", 0o755),
		unpackDir("bin/", 0o755),
		unpackFile("bin/su", 0o4755, "setuid"),
		unpackLink(tar.TypeLink, "bin/su-again", "bin/su"),
		unpackLink(tar.TypeSymlink, "bin/abs", "/usr/bin/env"),
		unpackLink(tar.TypeSymlink, "bin/rel", "../usr/bin/env"),
		ping,
		etc,
		unpackFile("etc/passwd", 0o644, "root:x:0:0::/root:/bin/sh\n"),
		unpackOwned(unpackFile("etc/shadow", 0o640, "root:*::"), 0, 42),
		unpackFile("etc/motd", 0o644, "old"),
		unpackFile("etc/motd", 0o644, "new"),
		unpackLink(tar.TypeSymlink, "etc/x", "/nowhere"),
		unpackFile("etc/x", 0o600, "now a file"),
		unpackDir("tmp/", 0o1777),
		unpackFile("usr/bin/env", 0o755, "env"), // parents only implied
		unpackOwned(unpackFile("home/user/shared", 0o664, "group-writable"), 1000, 1000),
		unpackNode(tar.TypeFifo, "run/fifo", 0o620, 0, 0),
		unpackFile("big", 0o644, big),
	)
	if err := Unpack(bytes.NewReader(stream), layer); err != nil {
		t.Fatalf("Unpack: %v", err)
	}

	tests := []struct {
		path, data, link string
		mode             uint32 // type and permission bits
		uid, gid         uint32
	}{
		{path: ".", mode: unix.S_IFDIR | 0o755},
		{path: "bin", mode: unix.S_IFDIR | 0o755},
		{path: "bin/su", mode: unix.S_IFREG | 0o4755, data: "setuid"},
		{path: "bin/su-again", mode: unix.S_IFREG | 0o4755, data: "setuid"},
		{path: "bin/abs", mode: unix.S_IFLNK | 0o777, link: "/usr/bin/env"},
		{path: "bin/rel", mode: unix.S_IFLNK | 0o777, link: "../usr/bin/env"},
		{path: "etc/passwd", mode: unix.S_IFREG | 0o644, data: "root:x:0:0::/root:/bin/sh\n"},
		{path: "etc/shadow", mode: unix.S_IFREG | 0o640, gid: 42, data: "root:*::"},
		{path: "etc/motd", mode: unix.S_IFREG | 0o644, data: "new"},
		{path: "etc/x", mode: unix.S_IFREG | 0o600, data: "now a file"},
		{path: "tmp", mode: unix.S_IFDIR | 0o1777},
		{path: "usr", mode: unix.S_IFDIR | 0o755},
		{path: "usr/bin", mode: unix.S_IFDIR | 0o755},
		{path: "usr/bin/env", mode: unix.S_IFREG | 0o755, data: "env"},
		{path: "home/user/shared", mode: unix.S_IFREG | 0o664, uid: 1000, gid: 1000, data: "group-writable"},
		{path: "run/fifo", mode: unix.S_IFIFO | 0o620},
		{path: "big", mode: unix.S_IFREG | 0o644, data: big},
	}
	for _, tt := range tests {
		p := filepath.Join(layer, tt.path)
		st := unpackLstat(t, p)
		if st.Mode != tt.mode || st.Uid != tt.uid || st.Gid != tt.gid {
			t.Errorf("%s: mode %o owner %d:%d, want mode %o owner %d:%d", tt.path, st.Mode, st.Uid, st.Gid, tt.mode, tt.uid, tt.gid)
		}
		if tt.data != "" {
			if got, err := os.ReadFile(p); err != nil || string(got) != tt.data {
				t.Errorf("%s: contents %.40q (%v), want %.40q", tt.path, got, err, tt.data)
			}
		}
		if tt.link != "" {
			if got, err := os.Readlink(p); err != nil || got != tt.link {
				t.Errorf("%s: link %q (%v), want %q", tt.path, got, err, tt.link)
			}
		}
		// Implied directories get the time of their making, as with tar.
		if want := unpackTime.Unix(); tt.path != "usr" && tt.path != "usr/bin" && st.Mtim.Sec != want {
			t.Errorf("%s: mtime %d, want %d", tt.path, st.Mtim.Sec, want)
		}
	}
	// A directory's time is set after its children were written.
	if st := unpackLstat(t, filepath.Join(layer, "etc")); st.Mtim.Sec != unpackDirTime.Unix() {
		t.Errorf("etc: mtime %v, want %v", time.Unix(st.Mtim.Unix()), unpackDirTime)
	}
	got := make([]byte, 64)
	if n, err := unix.Lgetxattr(filepath.Join(layer, "bin/ping"), "security.capability", got); err != nil || string(got[:n]) != caps {
		t.Errorf("bin/ping: security.capability %x (%v), want %x", got[:max(n, 0)], err, caps)
	}
	su, again := unpackLstat(t, filepath.Join(layer, "bin/su")), unpackLstat(t, filepath.Join(layer, "bin/su-again"))
	if su.Ino != again.Ino || su.Nlink != 2 {
		t.Errorf("bin/su-again is not a hard link of bin/su (inodes %d, %d; links %d)", su.Ino, again.Ino, su.Nlink)
	}
}

func TestUnpackWhiteouts(t *testing.T) {
	unpackNeedRoot(t)
	isWhiteout := func(t *testing.T, p string) {
		if st := unpackLstat(t, p); st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
			t.Errorf("%s: mode %o rdev %d, want a 0:0 character device", p, st.Mode, st.Rdev)
		}
	}
	isOpaque := func(t *testing.T, p string) {
		if got := unpackOpaque(p); got != "y" {
			t.Errorf("%s: %s is %q, want \"y\"", p, layerOpaqueXattr, got)
		}
	}
	exists := func(t *testing.T, p string, typ uint32) {
		if st := unpackLstat(t, p); st.Mode&unix.S_IFMT != typ {
			t.Errorf("%s: mode %o, want type %o", p, st.Mode, typ)
		}
	}
	tests := []struct {
		name  string
		ents  []unpackEnt
		check func(t *testing.T, layer string)
	}{
		{"whiteout", []unpackEnt{unpackDir("etc/", 0o755), unpackFile("etc/.wh.motd", 0o644, "")},
			func(t *testing.T, l string) { isWhiteout(t, filepath.Join(l, "etc/motd")) }},
		{"whiteout in an implied directory", []unpackEnt{unpackFile("var/.wh.log", 0o644, "")},
			func(t *testing.T, l string) { isWhiteout(t, filepath.Join(l, "var/log")) }},
		{"whiteout written as a hard link", []unpackEnt{unpackFile("a", 0o644, ""), unpackLink(tar.TypeLink, ".wh.b", "a")},
			func(t *testing.T, l string) { isWhiteout(t, filepath.Join(l, "b")) }},
		{"whiteout leaves this layer's file", []unpackEnt{unpackFile("d", 0o644, "kept"), unpackFile(".wh.d", 0o644, "")},
			func(t *testing.T, l string) { exists(t, filepath.Join(l, "d"), unix.S_IFREG) }},
		{"file after its whiteout", []unpackEnt{unpackFile(".wh.d", 0o644, ""), unpackFile("d", 0o644, "new")},
			func(t *testing.T, l string) { exists(t, filepath.Join(l, "d"), unix.S_IFREG) }},
		{"directory after its whiteout is opaque", []unpackEnt{unpackFile(".wh.e", 0o644, ""), unpackDir("e/", 0o755), unpackFile("e/f", 0o644, "")},
			func(t *testing.T, l string) {
				isOpaque(t, filepath.Join(l, "e"))
				exists(t, filepath.Join(l, "e/f"), unix.S_IFREG)
			}},
		{"opaque, then contents", []unpackEnt{unpackDir("a/", 0o755), unpackFile("a/.wh..wh..opq", 0o644, ""), unpackFile("a/new", 0o644, "")},
			func(t *testing.T, l string) {
				isOpaque(t, filepath.Join(l, "a"))
				exists(t, filepath.Join(l, "a/new"), unix.S_IFREG)
			}},
		{"contents, then opaque", []unpackEnt{unpackDir("b/", 0o755), unpackFile("b/old", 0o644, ""), unpackFile("b/.wh..wh..opq", 0o644, "")},
			func(t *testing.T, l string) {
				isOpaque(t, filepath.Join(l, "b"))
				exists(t, filepath.Join(l, "b/old"), unix.S_IFREG)
			}},
		{"opaque implied directory", []unpackEnt{unpackFile("c/d/.wh..wh..opq", 0o644, "")},
			func(t *testing.T, l string) { isOpaque(t, filepath.Join(l, "c/d")) }},
		{"AUFS bookkeeping skipped", []unpackEnt{unpackDir(".wh..wh.plnk/", 0o700), unpackFile(".wh..wh.plnk/1.2", 0o644, "")},
			func(t *testing.T, l string) {}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, layer, _ := unpackDirs(t)
			if err := Unpack(bytes.NewReader(unpackTar(t, tt.ents...)), layer); err != nil {
				t.Fatalf("Unpack: %v", err)
			}
			tt.check(t, layer)
			// No ".wh." name is ever stored: overlayfs would show it.
			filepath.WalkDir(layer, func(p string, d fs.DirEntry, err error) error {
				if err == nil && strings.HasPrefix(d.Name(), layerWhiteoutPrefix) {
					t.Errorf("%s stored as a file", p)
				}
				return err
			})
		})
	}
}

func TestUnpackRefusesHostileLayers(t *testing.T) {
	unpackNeedRoot(t)
	// Entries before the bad one, so that there is something to remove.
	good := []unpackEnt{unpackDir("etc/", 0o755), unpackFile("etc/hosts", 0o644, "127.0.0.1 localhost\n"), unpackFile("usr/lib/x", 0o644, "x")}
	whole := func(ents ...unpackEnt) func(*testing.T, string) []byte {
		return func(t *testing.T, _ string) []byte { return unpackTar(t, append(good, ents...)...) }
	}
	// Through a symlink to outside: the way in a naive unpacker would write to the host.
	via := func(target func(outside string) string, ents ...unpackEnt) func(*testing.T, string) []byte {
		return func(t *testing.T, outside string) []byte {
			link := unpackLink(tar.TypeSymlink, "link", target(outside))
			return unpackTar(t, append(append(good, link), ents...)...)
		}
	}
	abs := func(outside string) string { return outside }
	rel := func(string) string { return "../../../outside" }
	cut := func(n int) func(*testing.T, string) []byte {
		return func(t *testing.T, _ string) []byte {
			s := unpackTar(t, append(good, unpackFile("usr/lib/big", 0o644, strings.Repeat("z", 8192)))...)
			return s[:len(s)-n]
		}
	}
	xattr := unpackFile("etc/redirected", 0o644, "")
	xattr.hdr.PAXRecords = map[string]string{"SCHILY.xattr.trusted.overlay.redirect": "/etc"}

	tests := []struct {
		name   string
		stream func(t *testing.T, outside string) []byte
		entry  string // the entry the error names
		is     error
	}{
		{"parent", whole(unpackFile("../evil", 0o644, "x")), "../evil", ErrLayerRefused},
		{"grandparent", whole(unpackFile("../../evil", 0o644, "x")), "../../evil", ErrLayerRefused},
		{"absolute", whole(unpackFile("/abs/evil", 0o644, "x")), "/abs/evil", ErrLayerRefused},
		{"dot-dot inside", whole(unpackFile("a/../../evil", 0o644, "x")), "a/../../evil", ErrLayerRefused},
		{"write through absolute symlink", via(abs, unpackFile("link/evil", 0o644, "x")), "link/evil", ErrLayerRefused},
		{"write through relative symlink", via(rel, unpackFile("link/evil", 0o644, "x")), "link/evil", ErrLayerRefused},
		{"replace through symlink", via(abs, unpackFile("link/secret", 0o644, "x")), "link/secret", ErrLayerRefused},
		{"directory through symlink", via(rel, unpackDir("link/sub/", 0o755)), "link/sub/", ErrLayerRefused},
		{"symlink through symlink", via(abs, unpackLink(tar.TypeSymlink, "link/evil", "/")), "link/evil", ErrLayerRefused},
		{"hard link through symlink", via(abs, unpackLink(tar.TypeLink, "stolen", "link/secret")), "stolen", ErrLayerRefused},
		{"whiteout through symlink", via(abs, unpackFile("link/.wh.secret", 0o644, "")), "link/.wh.secret", ErrLayerRefused},
		{"opaque through symlink", via(rel, unpackFile("link/.wh..wh..opq", 0o644, "")), "link/.wh..wh..opq", ErrLayerRefused},
		{"hard link escaping", whole(unpackLink(tar.TypeLink, "evil", "../../etc/passwd")), "evil", ErrLayerRefused},
		{"hard link absolute", whole(unpackLink(tar.TypeLink, "evil", "/etc/passwd")), "evil", ErrLayerRefused},
		{"hard link to missing file", whole(unpackLink(tar.TypeLink, "evil", "etc/nothere")), "evil", ErrLayerRefused},
		{"hard link to directory", whole(unpackLink(tar.TypeLink, "evil", "etc")), "evil", ErrLayerRefused},
		{"character device", whole(unpackNode(tar.TypeChar, "dev/null", 0o666, 1, 3)), "dev/null", ErrLayerRefused},
		{"block device", whole(unpackNode(tar.TypeBlock, "dev/sda", 0o660, 8, 0)), "dev/sda", ErrLayerRefused},
		{"unknown type", whole(unpackNode('Z', "odd", 0o644, 0, 0)), "odd", ErrLayerRefused},
		{"overlayfs xattr", whole(xattr), "etc/redirected", ErrLayerRefused},
		{"inside a whiteout", whole(unpackFile(".wh.x/y", 0o644, "")), ".wh.x/y", ErrLayerRefused},
		{"truncated in a file", cut(4096 + 1024), "usr/lib/big", io.ErrUnexpectedEOF},
		{"truncated in a header", cut(8192 + 1024 + 100), "usr/lib/x", io.ErrUnexpectedEOF},
		{"no end-of-archive marker", cut(1024), "usr/lib/big", io.ErrUnexpectedEOF},
		{"not a tar", func(*testing.T, string) []byte { return bytes.Repeat([]byte("junk"), 300) }, "", tar.ErrHeader},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base, layer, outside := unpackDirs(t)
			stream := tt.stream(t, outside)
			before := unpackSnapshot(t, base, layer)
			err := Unpack(bytes.NewReader(stream), layer)
			t.Logf("Unpack: %v", err)
			if !errors.Is(err, tt.is) || (tt.entry != "" && !strings.Contains(err.Error(), fmt.Sprintf("%q", tt.entry))) {
				t.Errorf("Unpack = %v, want %v naming %q", err, tt.is, tt.entry)
			}
			if strings.Contains(tt.name, "through") && !strings.Contains(fmt.Sprint(err), "symbolic link") {
				t.Errorf("Unpack = %v, want an error about writing through a symbolic link", err)
			}
			if names, err := os.ReadDir(layer); err != nil || len(names) > 0 {
				t.Errorf("layer directory after the failure holds %v (%v), want nothing", names, err)
			}
			after := unpackSnapshot(t, base, layer)
			for p, was := range before {
				if after[p] != was {
					t.Errorf("%s changed:\n was %s\n now %s", p, was, after[p])
				}
			}
			for p, now := range after {
				if _, ok := before[p]; !ok {
					t.Errorf("%s appeared outside the layer: %s", p, now)
				}
			}
		})
	}
}

func TestUnpackCleanPath(t *testing.T) {
	tests := []struct{ in, rel, problem string }{
		{"./", ".", ""},
		{"", ".", ""},
		{"a/./b/../c/", "a/c", ""},
		{"a/../b", "b", ""},
		{"..", "", "escapes"},
		{"a/../../x", "", "escapes"},
		{"/etc/passwd", "", "absolute"},
		{"a\x00b", "", "NUL"},
		{strings.Repeat("a/", 3000), "", "longer"},
	}
	for _, tt := range tests {
		rel, problem := layerCleanPath(tt.in)
		if rel != tt.rel || !strings.Contains(problem, tt.problem) || (tt.problem == "") != (problem == "") {
			t.Errorf("layerCleanPath(%.20q) = %q, %q; want %q, %q", tt.in, rel, problem, tt.rel, tt.problem)
		}
	}
}

func TestUnpackNeedsEmptyDirectory(t *testing.T) {
	_, layer, _ := unpackDirs(t)
	if err := os.WriteFile(filepath.Join(layer, "mine"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Unpack(bytes.NewReader(unpackTar(t)), layer); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("Unpack into a non-empty directory = %v, want an error", err)
	}
	if _, err := os.Stat(filepath.Join(layer, "mine")); err != nil {
		t.Errorf("the directory's own file is gone: %v", err)
	}
}

// unpackCountingReader counts what Unpack reads.
type unpackCountingReader struct {
	r io.Reader
	n int
}

func (c *unpackCountingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func TestUnpackReadsStreamToTheEnd(t *testing.T) {
	unpackNeedRoot(t)
	_, layer, _ := unpackDirs(t)
	// tar(1) pads archives to 10 KiB records; whatever follows the end-of-archive marker is not
	// the layer's, but a digest-verifying reader needs to see its end.
	stream := append(unpackTar(t, unpackFile("f", 0o644, "x")), make([]byte, 9000)...)
	r := &unpackCountingReader{r: bytes.NewReader(stream)}
	if err := Unpack(r, layer); err != nil {
		t.Fatalf("Unpack: %v", err)
	}
	if r.n != len(stream) {
		t.Errorf("Unpack read %d of %d bytes", r.n, len(stream))
	}
}

// TestUnpackDiskFull unpacks onto a 1 MiB tmpfs, mounted in a mount namespace of one locked OS
// thread so that nothing outside the test sees it; the thread, never unlocked, ends with its
// goroutine, and the namespace and tmpfs with it.
func TestUnpackDiskFull(t *testing.T) {
	unpackNeedRoot(t)
	_, layer, _ := unpackDirs(t)
	stream := unpackTar(t, unpackDir("etc/", 0o755), unpackFile("etc/hosts", 0o644, "x"),
		unpackFile("usr/lib/big", 0o644, strings.Repeat("x", 4<<20)))
	errc := make(chan error, 1)
	skip := errors.New("skip")
	go func() {
		runtime.LockOSThread()
		errc <- func() error {
			if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
				return fmt.Errorf("%w: unshare: %v", skip, err)
			}
			if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
				return fmt.Errorf("%w: making mounts private: %v", skip, err)
			}
			if err := unix.Mount("tmpfs", layer, "tmpfs", 0, "size=1m"); err != nil {
				return fmt.Errorf("%w: mounting tmpfs: %v", skip, err)
			}
			err := Unpack(bytes.NewReader(stream), layer)
			if !errors.Is(err, unix.ENOSPC) || !strings.Contains(err.Error(), `"usr/lib/big"`) {
				return fmt.Errorf("Unpack onto a full disk = %v, want ENOSPC naming usr/lib/big", err)
			}
			if names, err := os.ReadDir(layer); err != nil || len(names) > 0 {
				return fmt.Errorf("layer directory after the failure holds %v (%v), want nothing", names, err)
			}
			return nil
		}()
	}()
	if err := <-errc; errors.Is(err, skip) {
		t.Skip(err)
	} else if err != nil {
		t.Error(err)
	}
}
