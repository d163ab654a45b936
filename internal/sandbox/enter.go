package sandbox

import (
	"errors"
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
)

// Enter runs fn on a thread of its own inside the network namespace nsFd refers to, and
// switches the thread back afterwards. Sockets fn opens stay in that namespace for their whole
// life, and /proc/sys/net read or written by fn is that namespace's: that is how the daemon
// serves, dials and configures inside a namespace without ever moving itself. If the thread
// cannot be switched back it stays locked, so the runtime discards it with the goroutine
// instead of letting other goroutines run in the wrong namespace.
func Enter(nsFd int, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		origin, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("opening the current network namespace: %w", err)
			return
		}
		defer unix.Close(origin)
		if err := unix.Setns(nsFd, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("entering the network namespace (is it a network namespace?): %w", err)
			return
		}
		fnErr := fn()
		if err := unix.Setns(origin, unix.CLONE_NEWNET); err != nil {
			errc <- errors.Join(fnErr, fmt.Errorf("returning to the original network namespace: %w", err))
			return // the thread stays locked and dies with this goroutine
		}
		runtime.UnlockOSThread()
		errc <- fnErr
	}()
	return <-errc
}

// EnterPath is Enter for the namespace bind-mounted (or linked) at path.
func EnterPath(path string, fn func() error) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening network namespace %s: %w", path, err)
	}
	defer unix.Close(fd)
	if err := Enter(fd, fn); err != nil {
		return fmt.Errorf("in network namespace %s: %w", path, err)
	}
	return nil
}
