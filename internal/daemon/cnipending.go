package daemon

import (
	"context"
	"log/slog"
	"os"

	"github.com/cnet-dev/cnet/internal/api"
	"github.com/cnet-dev/cnet/internal/errdefs"
)

// completePendingCNI does the CNI DELs and GCs that the plugin left in dir while the daemon was
// down (api.CNIPendingDir), oldest first. Serve calls it once it listens and before it answers
// anyone: a runtime's next ADD must not be removed by a GC sent before it, and a plugin that
// could not connect and then wrote its request finds the daemon either still not listening
// (and the request read here) or answering (and the request made directly).
//
// A request for a network that no longer exists has nothing left to do. One that fails for
// another reason stays for the next start, and says why in the log: it is the only record that
// the runtime has let go of the attachment.
func (d *Daemon) completePendingCNI(dir string) {
	files, errs := api.ReadCNIPending(dir)
	for _, err := range errs {
		slog.Error("skipping an unreadable pending CNI request", "err", err)
	}
	for _, f := range files {
		var err error
		what := "DEL"
		ctx := context.Background()
		if f.Request.Del != nil {
			err = d.CNIDel(ctx, *f.Request.Del)
		} else {
			what = "GC"
			_, err = d.CNIGC(ctx, *f.Request.GC)
			if errdefs.Is(err, errdefs.KindNotFound) {
				err = nil
			}
		}
		if err != nil {
			slog.Error("completing a CNI request sent while the daemon was down; kept for the next start", "request", what, "file", f.Path, "err", err)
			continue
		}
		slog.Info("completed a CNI request sent while the daemon was down", "request", what, "file", f.Path)
		if err := os.Remove(f.Path); err != nil {
			slog.Error("removing a completed pending CNI request", "file", f.Path, "err", err)
		}
	}
}
