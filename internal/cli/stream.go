package cli

import (
	"errors"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/cnet-dev/cnet/internal/api"
)

// errNotATTY is docker's refusal of -it when stdin is a pipe or file: a raw terminal cannot be
// made of it, and the process would wait for terminal input that never comes.
var errNotATTY = errors.New("the input device is not a TTY")

// checkTTY refuses -t with an attached stdin that is not a terminal.
func checkTTY(in io.Reader, attachStdin, tty bool) error {
	if tty && attachStdin && !isTerminal(in) {
		return errNotATTY
	}
	return nil
}

func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// connectStdio joins the local stdio to a process's hijacked stream, for run and exec alike,
// and returns when the process's output ends. With stdin forwarded, its end is passed on as a
// half-close so the process sees EOF while its output still flows. With a tty and a terminal
// stdin, the terminal is put in raw mode meanwhile, so keys (Ctrl-C included) reach the
// process instead of being interpreted locally.
func connectStdio(cmd *cobra.Command, s *api.HijackedStream, forwardStdin, tty bool, resize func(rows, cols uint16) error) error {
	stdout, stderr := cmd.OutOrStdout(), cmd.ErrOrStderr()
	if tty {
		defer followTerminalSize(stdout, resize)()
	}
	if forwardStdin {
		in := cmd.InOrStdin()
		if tty && isTerminal(in) {
			fd := int(in.(*os.File).Fd())
			state, err := term.MakeRaw(fd)
			if err != nil {
				return err
			}
			defer func() { _ = term.Restore(fd, state) }()
		}
		go func() {
			_, _ = io.Copy(s, in)
			_ = s.CloseWrite()
		}()
	}
	var err error
	if s.Raw {
		_, err = io.Copy(stdout, s)
	} else {
		err = api.Demux(stdout, stderr, s)
	}
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// terminalSize is out's size as rows and columns, nil when out is not a terminal: sent with a
// -t create or exec so that the process starts with it, as docker's CLI does.
func terminalSize(out io.Writer) *[2]uint16 {
	f, ok := out.(*os.File)
	if !ok {
		return nil
	}
	cols, rows, err := term.GetSize(int(f.Fd()))
	if err != nil {
		return nil
	}
	return &[2]uint16{uint16(rows), uint16(cols)}
}

// followTerminalSize sends the local terminal's size through resize now and at every SIGWINCH
// until the returned stop is called, as docker's CLI does for -t; it does nothing when out is
// not a terminal.
func followTerminalSize(out io.Writer, resize func(rows, cols uint16) error) (stop func()) {
	f, ok := out.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return func() {}
	}
	send := func() {
		if cols, rows, err := term.GetSize(int(f.Fd())); err == nil {
			_ = resize(uint16(rows), uint16(cols)) // as docker: a failed resize leaves 80x24
		}
	}
	send()
	winch := make(chan os.Signal, 1)
	signal.Notify(winch, syscall.SIGWINCH)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-winch:
				send()
			case <-done:
				return
			}
		}
	}()
	return func() { signal.Stop(winch); close(done) }
}

// startFailureCode maps a process that could not be started to the shell's exit codes, as
// docker does: 127 when the command was not found, 126 when it could not be executed, else 125
// (the CLI's own failure).
func startFailureCode(err error) int {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "executable file not found"), strings.Contains(msg, "no such file or directory"):
		return 127
	case strings.Contains(msg, "permission denied"):
		return 126
	}
	return 125
}
