package image

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// parallelDownloads is how many layers a pull fetches at once: Docker's default
// (max-concurrent-downloads), which keeps a registry busy without opening a connection per layer.
const parallelDownloads = 3

// progressEvery is the least time between two "Downloading" reports of one layer: enough for a
// progress bar to move smoothly, few enough not to flood the stream with a message per read.
const progressEvery = 100 * time.Millisecond

// download reads every layer of a pull through its cache (which keeps the bytes), reporting
// Docker's steps for each: Waiting, Downloading with bytes done and total, Verifying Checksum,
// Download complete. The layer's reader checks its digest at the end, so a corrupt layer fails
// here. The first failure cancels the other downloads. report is called from one goroutine at a
// time (it writes to the client's stream), and never after download returns.
func download(ctx context.Context, layers []v1.Layer, report func(Progress)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var mu sync.Mutex
	unsafeReport := report
	report = func(p Progress) {
		mu.Lock()
		defer mu.Unlock()
		unsafeReport(p)
	}
	digests := make([]v1.Hash, len(layers))
	for i, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return err
		}
		digests[i] = d
	}
	slots := make(chan struct{}, parallelDownloads)
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for i, l := range layers {
		d := digests[i]
		id := d.Hex[:12]
		if i >= parallelDownloads {
			report(Progress{ID: id, Status: "Waiting", Layer: true})
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return
			}
			defer func() { <-slots }()
			if err := downloadLayer(ctx, l, id, report); err != nil {
				once.Do(func() { first = fmt.Errorf("layer %s: %w", d, err); cancel() })
			}
		}()
	}
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return first
}

func downloadLayer(ctx context.Context, l v1.Layer, id string, report func(Progress)) error {
	total, _ := l.Size()
	rc, err := l.Compressed()
	if err != nil {
		return err
	}
	defer rc.Close()
	r := &countingReader{ctx: ctx, r: rc, report: func(n int64) {
		report(Progress{ID: id, Status: "Downloading", Layer: true, Current: n, Total: total})
	}}
	r.report(0)
	if _, err := io.Copy(io.Discard, r); err != nil {
		return err
	}
	report(Progress{ID: id, Status: "Verifying Checksum", Layer: true})
	if err := rc.Close(); err != nil {
		return err
	}
	report(Progress{ID: id, Status: "Download complete", Layer: true})
	return nil
}

// countingReader reports how many bytes went through it, at most every progressEvery, and
// stops when its context ends (a client that hung up, or another layer that failed).
type countingReader struct {
	ctx    context.Context
	r      io.Reader
	n      int64
	last   time.Time
	report func(int64)
}

func (c *countingReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	if now := time.Now(); now.Sub(c.last) >= progressEvery || err == io.EOF {
		c.last = now
		c.report(c.n)
	}
	return n, err
}
