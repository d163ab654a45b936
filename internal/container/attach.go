package container

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/cnet-dev/cnet/internal/api"
)

// maxSockPath is what fits in sockaddr_un.sun_path with its terminating NUL.
const maxSockPath = 107

// withSockAddr calls fn with an address for DIR/attach.sock that fits in a sockaddr_un: the
// path itself, or, for a deep directory, the same file through an open descriptor of it.
func withSockAddr(dir string, fn func(addr string) error) error {
	path := filepath.Join(dir, attachSock)
	if len(path) <= maxSockPath {
		return fn(path)
	}
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return fn(fmt.Sprintf("/proc/self/fd/%d/%s", fd, attachSock))
}

func listenAttach(dir string) (*net.UnixListener, error) {
	var ln *net.UnixListener
	err := withSockAddr(dir, func(addr string) error {
		var err error
		ln, err = net.ListenUnix("unix", &net.UnixAddr{Name: addr, Net: "unix"})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("creating attach socket: %w", err)
	}
	// The address may be a /proc/self/fd path that is gone by then; closeAttach removes it.
	ln.SetUnlinkOnClose(false)
	return ln, nil
}

func closeAttach(dir string, ln *net.UnixListener) {
	_ = os.Remove(filepath.Join(dir, attachSock))
	ln.Close()
}

// Attach connects to the shim's attach socket. The returned Attachment serves one client
// connection: the shim already speaks the wire format, so bytes are only spliced both ways.
// It fails with ErrNotRunning once the process has ended.
func Attach(dir string, tty bool) (api.Attachment, error) {
	var conn *net.UnixConn
	err := withSockAddr(dir, func(addr string) error {
		var err error
		conn, err = net.DialUnix("unix", nil, &net.UnixAddr{Name: addr, Net: "unix"})
		return err
	})
	if err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ECONNREFUSED) {
			return nil, fmt.Errorf("attaching to container: %w", ErrNotRunning)
		}
		return nil, fmt.Errorf("attaching to container: %w", err)
	}
	return &attachment{shim: conn, tty: tty}, nil
}

type attachment struct {
	shim *net.UnixConn
	tty  bool
}

func (a *attachment) Tty() bool { return a.tty }

// Serve returns once the shim closed the connection (the process ended and its output was
// drained), or the client stopped taking output. The client's end of input is passed on as a
// half-close, which the shim turns into end-of-file on the process's stdin.
func (a *attachment) Serve(conn net.Conn) error {
	defer a.shim.Close()
	go func() {
		_, _ = io.Copy(a.shim, conn)
		_ = a.shim.CloseWrite()
	}()
	if _, err := io.Copy(conn, a.shim); err != nil {
		// Closing our end makes the shim drop this client rather than block on it.
		return fmt.Errorf("copying container output to the client: %w", err)
	}
	return nil
}

// OpenLog returns the container's output so far: the same bytes an attached client receives
// (frames, or raw with a tty).
func OpenLog(dir string) (io.ReadCloser, error) {
	f, err := os.Open(filepath.Join(dir, logFile))
	if err != nil {
		return nil, fmt.Errorf("opening container log: %w", err)
	}
	return f, nil
}
