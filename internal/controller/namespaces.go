package controller

import (
	"net/netip"

	"github.com/vishvananda/netns"

	"github.com/cnet-dev/cnet/internal/sandbox"
)

// Namespaces is how the controller makes, reaches and routes sandbox namespaces. Drivers get
// the handle Open returns and do the rest; the seam lets unit tests drive the controller's
// ordering and rollback with a fake, without root.
type Namespaces interface {
	Create(path string) error
	// Adopt names another runtime's namespace src at path (see sandbox.Adopt).
	Adopt(src, path string) error
	Delete(path string) error
	Exists(path string) bool
	Open(path string) (netns.NsHandle, error)
	// SetDefaultRoute points the namespace's default route through ifName at gw.
	SetDefaultRoute(path, ifName string, gw netip.Addr) error
}

// kernelNamespaces is Namespaces on the kernel's namespaces (package sandbox).
type kernelNamespaces struct{}

func (kernelNamespaces) Create(path string) error                 { return sandbox.Create(path) }
func (kernelNamespaces) Adopt(src, path string) error             { return sandbox.Adopt(src, path) }
func (kernelNamespaces) Delete(path string) error                 { return sandbox.Delete(path) }
func (kernelNamespaces) Exists(path string) bool                  { return sandbox.Exists(path) }
func (kernelNamespaces) Open(path string) (netns.NsHandle, error) { return sandbox.Open(path) }
func (kernelNamespaces) SetDefaultRoute(path, ifName string, gw netip.Addr) error {
	return sandbox.SetDefaultRoute(path, ifName, gw)
}
