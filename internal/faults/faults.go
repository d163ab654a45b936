// Package faults lets tests crash the daemon at a named step, to show that whatever point it
// dies at, the next start recovers without leaks or duplicate addresses. A step is armed by
// naming it in the environment variable CNET_CRASH_AT of the daemon's process; unarmed, Point
// costs one string comparison.
package faults

import (
	"os"
	"syscall"
)

// Env is the variable that arms a crash point.
const Env = "CNET_CRASH_AT"

var armed = os.Getenv(Env)

// Points lists the named steps, in the order an operation passes them; tests iterate it.
var Points = []string{
	"network-recorded",   // network record written, bridge not yet created
	"network-created",    // bridge created, firewall not yet told
	"sandbox-created",    // namespace mounted, no endpoint yet
	"endpoint-recorded",  // address allocated and recorded, no interface yet
	"endpoint-plugged",   // veth up in the sandbox, default route maybe not yet
	"ports-published",    // DNAT elements in place, container not yet running
	"shim-forked",        // shim forked, its answer not yet read (it must not start the process)
	"container-started",  // shim running, container record not yet saying so
	"endpoint-unplugged", // interface gone, record and address not yet released
}

// ClusterPoints are the steps of global (overlay) networks' operations, where the cluster store
// and this host can disagree after a crash; TestOverlayCrash iterates them.
var ClusterPoints = []string{
	"global-network-claimed", // network claimed in etcd, not yet built on this host
	"endpoint-recorded",      // address claimed in etcd and recorded here, no interface yet
	"endpoint-plugged",       // interface up, endpoint not yet published in etcd
	"endpoint-published",     // endpoint published in etcd, container not yet running
	"endpoint-unplugged",     // interface gone (disconnect), record and address claim not yet released
}

// CNIPoints are the steps of the CNI plugin's ADD and DEL, where the daemon's records, the
// runtime's namespace and what the runtime was told can disagree after a crash;
// TestCNICrash iterates them.
var CNIPoints = []string{
	"cni-recorded",       // ADD: attachment recorded, no sandbox yet
	"sandbox-created",    // ADD: the runtime's namespace adopted, no endpoint yet
	"endpoint-recorded",  // ADD: address allocated and recorded, no interface yet
	"endpoint-plugged",   // ADD: interface up in the runtime's namespace
	"ports-published",    // ADD: port mappings in the firewall, the runtime not yet answered
	"endpoint-unplugged", // DEL: interface gone, endpoint record and address not yet released
	"cni-released",       // DEL: sandbox gone, attachment record not yet deleted
}

// Point kills the process with SIGKILL, as a crash would (no deferred cleanup runs), when
// name is the armed step.
func Point(name string) {
	if armed != "" && armed == name {
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // the signal is on its way
	}
}
