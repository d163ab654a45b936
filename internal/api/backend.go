package api

import (
	"context"
	"io"
	"net"
)

// Attachment is a process's stdio offered to one client connection (attach, exec start).
type Attachment interface {
	// Tty reports whether output is raw (a terminal) rather than multiplexed frames.
	Tty() bool
	// Serve copies stdin from conn to the process and the process's output to conn until the
	// output ends, then returns. conn is the hijacked client connection.
	Serve(conn net.Conn) error
}

// Backend is what the API server serves; the daemon implements it. Errors are classified with
// internal/errdefs so the server can answer with Docker's status codes.
type Backend interface {
	NetworkList(ctx context.Context) ([]Network, error)
	NetworkInspect(ctx context.Context, idOrName string, verbose bool) (Network, error)
	NetworkCreate(ctx context.Context, req NetworkCreateRequest) (NetworkCreateResponse, error)
	NetworkRemove(ctx context.Context, idOrName string) error
	NetworkConnect(ctx context.Context, idOrName string, req NetworkConnectRequest) error
	NetworkDisconnect(ctx context.Context, idOrName string, req NetworkDisconnectRequest) error
	// NetworksPrune removes unused user networks as Docker's filters (until, label) select.
	NetworksPrune(ctx context.Context, f Filters) (NetworksPruneResponse, error)
	// The CNI plugin's calls (see cni.go).
	CNIAdd(ctx context.Context, req CNIAttachRequest) (CNIAttachment, error)
	CNIDel(ctx context.Context, req CNIDetachRequest) error
	CNICheck(ctx context.Context, req CNIDetachRequest) (CNIAttachment, error)
	CNIGC(ctx context.Context, req CNIGCRequest) (int, error)

	ContainerCreate(ctx context.Context, name string, req ContainerCreateRequest) (ContainerCreateResponse, error)
	ContainerStart(ctx context.Context, idOrName string) error
	ContainerAttach(ctx context.Context, idOrName string) (Attachment, error)
	// ContainerWait registers a wait without blocking and returns a channel that yields the
	// exit code once the container is not running (condition "not-running", the default) or
	// at its next exit ("next-exit"). Registering before answering lets `run` start the
	// container only after its wait is in place, so a quick exit is never missed.
	ContainerWait(ctx context.Context, idOrName, condition string) (<-chan int, error)
	ContainerList(ctx context.Context, all bool) ([]ContainerSummary, error)
	ContainerInspect(ctx context.Context, idOrName string) (ContainerJSON, error)
	ContainerStop(ctx context.Context, idOrName string, timeoutSeconds *int) error
	ContainerRemove(ctx context.Context, idOrName string, force bool) error
	ContainerKill(ctx context.Context, idOrName, signal string) error
	ContainerRestart(ctx context.Context, idOrName string, timeoutSeconds *int) error
	ContainerRename(ctx context.Context, idOrName, newName string) error
	// ContainerResize and ExecResize set the window size of a -t container's or exec's terminal.
	ContainerResize(ctx context.Context, idOrName string, rows, cols uint16) error
	ExecResize(ctx context.Context, execID string, rows, cols uint16) error
	// ContainersPrune removes stopped containers as Docker's filters (until, label) select.
	ContainersPrune(ctx context.Context, f Filters) (ContainersPruneResponse, error)
	// ContainerLogs returns the container's output so far: frames, or raw bytes when tty;
	// with follow, the reader goes on with new output until the container stops or ctx ends.
	ContainerLogs(ctx context.Context, idOrName string, follow bool) (rc io.ReadCloser, tty bool, err error)

	ExecCreate(ctx context.Context, idOrName string, req ExecCreateRequest) (string, error)
	ExecStart(ctx context.Context, execID string) (Attachment, error)
	ExecInspect(ctx context.Context, execID string) (ExecInspect, error)

	ImageBackend
	SystemBackend
	EventsBackend
}
