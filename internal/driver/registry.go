package driver

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/cnet-dev/cnet/internal/errdefs"
)

// Registry holds the drivers the daemon was started with, by type. It is filled before the
// controller is built and not changed after, so lookups need no lock.
type Registry struct {
	drivers map[string]Driver
	started []Lifecycle
}

// NewRegistry returns a registry holding drivers; two drivers of one type are refused.
func NewRegistry(drivers ...Driver) (*Registry, error) {
	r := &Registry{drivers: map[string]Driver{}}
	for _, d := range drivers {
		if _, dup := r.drivers[d.Type()]; dup {
			return nil, fmt.Errorf("registering network drivers: two drivers of type %q", d.Type())
		}
		r.drivers[d.Type()] = d
	}
	return r, nil
}

// Driver returns the driver of a type, or a not-found error that names the ones there are.
func (r *Registry) Driver(typ string) (Driver, error) {
	if d, ok := r.drivers[typ]; ok {
		return d, nil
	}
	return nil, errdefs.NotFound("plugin %q not found: cnet has no network driver of that name (drivers: %s)", typ, strings.Join(r.Types(), ", "))
}

// Types lists the registered driver types, sorted.
func (r *Registry) Types() []string {
	out := make([]string, 0, len(r.drivers))
	for t := range r.drivers {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// Start starts the drivers that run goroutines, in type order; if one fails, those already
// started are closed again.
func (r *Registry) Start(ctx context.Context) error {
	for _, t := range r.Types() {
		l, ok := r.drivers[t].(Lifecycle)
		if !ok {
			continue
		}
		if err := l.Start(ctx); err != nil {
			return errors.Join(fmt.Errorf("starting network driver %s: %w", t, err), r.Close())
		}
		r.started = append(r.started, l)
	}
	return nil
}

// Close stops the started drivers, last started first.
func (r *Registry) Close() error {
	var errs []error
	for i := len(r.started) - 1; i >= 0; i-- {
		errs = append(errs, r.started[i].Close())
	}
	r.started = nil
	return errors.Join(errs...)
}
