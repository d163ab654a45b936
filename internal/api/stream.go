package api

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
)

// The attach and exec endpoints upgrade their HTTP connection to a raw byte stream, as Docker's
// do: the client writes stdin raw (and half-closes on EOF); the server writes the process's
// output raw when it has a tty, and otherwise multiplexed into frames of an 8-byte header
// {stream, 0, 0, 0, size uint32 big-endian} followed by size bytes, so stdout and stderr stay
// apart over one connection.
const (
	StreamStdin  byte = 0
	StreamStdout byte = 1
	StreamStderr byte = 2

	// MediaTypeRawStream and MediaTypeMultiplexedStream tell the client which of the two it gets.
	MediaTypeRawStream         = "application/vnd.docker.raw-stream"
	MediaTypeMultiplexedStream = "application/vnd.docker.multiplexed-stream"
)

const frameHeaderLen = 8

// maxFrame bounds one frame's payload so a corrupt header cannot make a reader allocate
// gigabytes.
const maxFrame = 1 << 20

// FrameWriter writes one stream's output as frames. Several FrameWriters may share one
// underlying writer: the shared mutex keeps frames whole.
type FrameWriter struct {
	mu     *sync.Mutex
	w      io.Writer
	stream byte
}

// NewFrameWriters returns a stdout and a stderr writer that frame onto w.
func NewFrameWriters(w io.Writer) (stdout, stderr *FrameWriter) {
	mu := &sync.Mutex{}
	return &FrameWriter{mu: mu, w: w, stream: StreamStdout}, &FrameWriter{mu: mu, w: w, stream: StreamStderr}
}

// Write sends p as one or more frames.
func (f *FrameWriter) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	written := 0
	for len(p) > 0 {
		n := min(len(p), maxFrame)
		var hdr [frameHeaderLen]byte
		hdr[0] = f.stream
		binary.BigEndian.PutUint32(hdr[4:], uint32(n))
		if _, err := f.w.Write(hdr[:]); err != nil {
			return written, err
		}
		m, err := f.w.Write(p[:n])
		written += m
		if err != nil {
			return written, err
		}
		p = p[n:]
	}
	return written, nil
}

// Demux copies a multiplexed stream from r to stdout and stderr until r ends. A clean end of
// stream between frames returns nil.
func Demux(stdout, stderr io.Writer, r io.Reader) error {
	var hdr [frameHeaderLen]byte
	buf := make([]byte, 32*1024)
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("reading stream header: %w", err)
		}
		size := binary.BigEndian.Uint32(hdr[4:])
		if size > maxFrame {
			return fmt.Errorf("stream frame of %d bytes exceeds the %d-byte limit", size, maxFrame)
		}
		var dst io.Writer
		switch hdr[0] {
		case StreamStdout:
			dst = stdout
		case StreamStderr:
			dst = stderr
		default:
			return fmt.Errorf("unknown stream %d in multiplexed output", hdr[0])
		}
		if _, err := io.CopyBuffer(dst, io.LimitReader(r, int64(size)), buf); err != nil {
			return fmt.Errorf("copying stream frame: %w", err)
		}
	}
}
