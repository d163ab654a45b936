package cniplugin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"syscall"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/cnet-dev/cnet/internal/api"
)

// errPluginNotAvailable is the spec's code 50 ("the plugin is not available", STATUS only).
// cni v1.3.0 names no constant for it.
const errPluginNotAvailable uint = 50

// daemonError turns a failed daemon call into a *types.Error whose code tells the runtime what
// to do: 11 (try again later) when the daemon is down or slow, since a runtime retries those
// and the user's fix is to start the daemon; 7 when ADD names a network the daemon does not
// have; 999 with the daemon's own message otherwise (it is written for a user to act on).
// op is the CNI command, for the message.
func daemonError(op, host string, err error) *types.Error {
	var te *types.Error
	if errors.As(err, &te) {
		return te
	}
	if isDown(err) {
		var ce *api.ConnectError
		errors.As(err, &ce)
		return types.NewError(types.ErrTryAgainLater, unreachable(host), ce.Err.Error())
	}
	var ce *api.ConnectError
	if errors.As(err, &ce) {
		// Permission denied and the like: retrying will not help, so not code 11.
		return types.NewError(types.ErrInternal, fmt.Sprintf("cnet %s: %v", op, ce), "")
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return types.NewError(types.ErrTryAgainLater,
			fmt.Sprintf("cnet %s: the cnet daemon at %s did not answer within %s", op, host, callTimeout), "")
	}
	var se *api.StatusError
	if errors.As(err, &se) {
		switch {
		case op == "ADD" && se.Status == http.StatusNotFound:
			return types.NewError(types.ErrInvalidNetworkConfig, "cnet ADD: "+se.Message, "")
		case se.Status == http.StatusServiceUnavailable:
			return types.NewError(types.ErrTryAgainLater, fmt.Sprintf("cnet %s: %s", op, se.Message), "")
		}
		return types.NewError(types.ErrInternal, fmt.Sprintf("cnet %s: %s", op, se.Message), "")
	}
	return types.NewError(types.ErrInternal, fmt.Sprintf("cnet %s: %v", op, err), "")
}

// unreachable is the one message for a daemon that is not there, naming the socket and the
// fix.
func unreachable(host string) string {
	return fmt.Sprintf("cnet daemon at %s is not reachable: start it with `cnet daemon`", host)
}

// isDown reports a daemon that is not running: nothing listens on its socket, or there is no
// socket. (A daemon that is slow, or refuses the caller, is not down.)
func isDown(err error) bool {
	var ce *api.ConnectError
	return errors.As(err, &ce) && (errors.Is(ce.Err, syscall.ECONNREFUSED) || errors.Is(ce.Err, syscall.ENOENT))
}

// isNotFound reports a daemon answer of 404.
func isNotFound(err error) bool {
	var se *api.StatusError
	return errors.As(err, &se) && se.Status == http.StatusNotFound
}
