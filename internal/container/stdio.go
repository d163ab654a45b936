package container

import (
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"github.com/cnet-dev/cnet/internal/api"
)

// drainGrace bounds how long output is still read once the process has exited. Output the
// process wrote before exiting is already buffered and read at once; only a background process
// that inherited its stdout could keep the stream open that long, and it does not get to keep
// the container (or an exec) from ending.
const drainGrace = time.Second

// stdio is a process's standard streams: the ends the process gets and the ends we keep.
type stdio struct {
	tty   bool
	child []*os.File // the process's fds 0, 1, 2; closed here once it started
	srcs  []source   // its output, as we read it
	owned []*os.File // our ends, closed by close

	inMu   sync.Mutex
	in     *os.File // where client input goes (pipe or pty master); nil without stdin
	inDone bool

	pumps sync.WaitGroup
}

type source struct {
	f      *os.File
	stream byte
}

// newStdio creates pipes, or a pseudo-terminal when tty. Without openStdin the process's stdin is
// /dev/null (or, with a tty, the terminal nobody types into).
func newStdio(tty, openStdin bool, size [2]uint16) (_ *stdio, err error) {
	s := &stdio{tty: tty}
	defer func() {
		if err != nil {
			s.closeChild()
			s.close()
		}
	}()
	if tty {
		master, slave, err := openPty(size)
		if err != nil {
			return nil, err
		}
		s.owned = append(s.owned, master)
		s.child = []*os.File{slave, slave, slave}
		s.srcs = []source{{master, api.StreamStdout}}
		if openStdin {
			s.in = master
		}
		return s, nil
	}
	s.child = make([]*os.File, 3)
	if openStdin {
		r, w, err := os.Pipe()
		if err != nil {
			return nil, fmt.Errorf("creating stdin pipe: %w", err)
		}
		s.child[0], s.in = r, w
		s.owned = append(s.owned, w)
	} else {
		if s.child[0], err = os.Open(os.DevNull); err != nil {
			return nil, fmt.Errorf("opening %s for stdin: %w", os.DevNull, err)
		}
	}
	for i, stream := range []byte{api.StreamStdout, api.StreamStderr} {
		r, w, err := os.Pipe()
		if err != nil {
			return nil, fmt.Errorf("creating output pipe: %w", err)
		}
		s.child[i+1] = w
		s.owned = append(s.owned, r)
		s.srcs = append(s.srcs, source{r, stream})
	}
	return s, nil
}

// openPty allocates a pseudo-terminal whose master is non-blocking, so that reading it honours
// deadlines (creack/pty leaves it in blocking mode).
func openPty(size [2]uint16) (master, slave *os.File, err error) {
	m, slave, err := pty.Open()
	if err != nil {
		return nil, nil, fmt.Errorf("allocating a pseudo-terminal: %w", err)
	}
	defer m.Close()
	// The client's size if it sent one, else Docker's default until it resizes.
	rows, cols := size[0], size[1]
	if rows == 0 || cols == 0 {
		rows, cols = 24, 80
	}
	_ = pty.Setsize(m, &pty.Winsize{Rows: rows, Cols: cols})
	fd, err := unix.FcntlInt(m.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err == nil {
		err = unix.SetNonblock(fd, true)
		if err != nil {
			unix.Close(fd)
		}
	}
	if err != nil {
		slave.Close()
		return nil, nil, fmt.Errorf("setting up pseudo-terminal: %w", err)
	}
	return os.NewFile(uintptr(fd), m.Name()), slave, nil
}

// closeChild closes the process's ends in this process, so that its output ends when it (and
// whatever inherited them) exits.
func (s *stdio) closeChild() {
	seen := map[*os.File]bool{}
	for _, f := range s.child {
		if f != nil && !seen[f] {
			seen[f] = true
			f.Close()
		}
	}
	s.child = nil
}

func (s *stdio) close() {
	for _, f := range s.owned {
		f.Close()
	}
}

// pump copies the process's output to write until it ends (see drain).
func (s *stdio) pump(write func(stream byte, p []byte)) {
	for _, src := range s.srcs {
		s.pumps.Add(1)
		go func() {
			defer s.pumps.Done()
			buf := make([]byte, 32*1024)
			for {
				n, err := src.f.Read(buf)
				if n > 0 {
					write(src.stream, buf[:n])
				}
				// EOF for pipes, EIO for a pty master whose terminal was closed.
				if err != nil {
					return
				}
			}
		}()
	}
}

// drain waits, after the process exited, until its output has been copied.
func (s *stdio) drain() {
	deadline := time.Now().Add(drainGrace)
	for _, src := range s.srcs {
		_ = src.f.SetReadDeadline(deadline)
	}
	s.pumps.Wait()
}

// writeStdin feeds client input to the process; input after closeStdin, or once the process
// stopped reading, is dropped.
func (s *stdio) writeStdin(p []byte) {
	s.inMu.Lock()
	defer s.inMu.Unlock()
	if s.in == nil || s.inDone {
		return
	}
	if _, err := s.in.Write(p); err != nil {
		s.inDone = true
	}
}

// closeStdin gives the process end-of-file on its stdin: the pipe is closed, or, on a terminal,
// EOT (^D) is typed, since the master also carries the output and must stay open.
func (s *stdio) closeStdin() {
	s.inMu.Lock()
	defer s.inMu.Unlock()
	if s.in == nil || s.inDone {
		return
	}
	s.inDone = true
	if s.tty {
		_, _ = s.in.Write([]byte{4})
		return
	}
	s.in.Close()
}
