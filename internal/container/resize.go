package container

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/cnet-dev/cnet/internal/errdefs"
)

// ttyFile names, in a container's directory, the device of its terminal (run -t): the daemon
// resizes it there, since the shim that holds the terminal's master has no channel for it.
const ttyFile = "tty"

// ptsMajor is the device major of Unix 98 pseudo-terminal slaves (/dev/pts/N).
const ptsMajor = 136

// ResizeTTY sets the window size of the terminal of the container whose directory is dir, as
// `docker run -t` asks when it starts and whenever the user's terminal changes size.
func ResizeTTY(dir string, rows, cols uint16) error {
	b, err := os.ReadFile(filepath.Join(dir, ttyFile))
	if errors.Is(err, os.ErrNotExist) {
		return errdefs.Conflict("the container has no terminal to resize (it was not started with -t, or is not running)")
	}
	if err != nil {
		return fmt.Errorf("finding the container's terminal: %w", err)
	}
	return resizePts(strings.TrimSpace(string(b)), rows, cols)
}

// resizePts sets the window size of a pseudo-terminal slave; its foreground process gets
// SIGWINCH from the kernel. The path is checked to be one before anything is done to it.
func resizePts(path string, rows, cols uint16) error {
	f, err := os.OpenFile(path, os.O_RDWR|unix.O_NOCTTY|unix.O_NONBLOCK, 0)
	if err != nil {
		return fmt.Errorf("opening the container's terminal: %w", err)
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return fmt.Errorf("opening the container's terminal: %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFCHR || unix.Major(st.Rdev) != ptsMajor {
		return fmt.Errorf("%s is not a pseudo-terminal", path)
	}
	return setWinsize(f, rows, cols)
}

// setWinsize sets f's window size through its raw descriptor (SyscallConn, not Fd, which would
// put a non-blocking master back in blocking mode and stop its read deadlines from working).
func setWinsize(f *os.File, rows, cols uint16) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return fmt.Errorf("resizing the terminal: %w", err)
	}
	var ioerr error
	if err := rc.Control(func(fd uintptr) {
		ioerr = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, &unix.Winsize{Row: rows, Col: cols})
	}); err != nil {
		return fmt.Errorf("resizing the terminal: %w", err)
	}
	if ioerr != nil {
		return fmt.Errorf("resizing the terminal: %w", ioerr)
	}
	return nil
}

// Resize sets the window size of a running exec's terminal (exec -t).
func (e *Exec) Resize(rows, cols uint16) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.tty == nil {
		return errdefs.Conflict("the exec has no terminal to resize (it was not started with -t, or has ended)")
	}
	return setWinsize(e.tty, rows, cols)
}
