package discover

import (
	"cmp"
	"slices"
)

// Node is one device node to hand to a container.
type Node struct {
	// Path is the path as matched on the host (without the root prefix),
	// e.g. /dev/serial/by-id/usb-FTDI_x-if00-port0.
	Path string
	// HostPath is the node itself, symlinks resolved within the root and
	// without the root prefix, e.g. /dev/ttyUSB0: what the container
	// runtime needs.
	HostPath string
}

// Device is one discovered device.
type Device struct {
	// Path is the match (for a group, its first member's path), as the
	// host sees it.
	Path string
	// Key is the group key; "" without Groups.
	Key string
	// Nodes are the device nodes to pass, sorted by Path: the match itself;
	// for a directory match, every char/block node under it; for a group,
	// every member's nodes.
	Nodes []Node
	// Identity stays the same across replugs of one physical device and
	// differs when a kernel name is reused by another: usb:<vendor>:<product>:<serial>,
	// by-id:<name>, dev:<major>:<minor> or dir:<path>; a group has its first
	// member's.
	Identity string
	// Serial is the USB serial if known, else "".
	Serial string
}

// Problem is a match skipped or cut, said for a log line and a metric.
type Problem struct {
	Path   string
	Reason string // a short sentence
}

// Result is what a scan found.
type Result struct {
	Devices  []Device // sorted by Path (with Groups: by Key)
	Problems []Problem
}

// Equal reports whether two results have the same devices and problems,
// in the same order (a nil and an empty list are equal).
func (r Result) Equal(o Result) bool {
	return slices.EqualFunc(r.Devices, o.Devices, Device.equal) && slices.Equal(r.Problems, o.Problems)
}

func (d Device) equal(o Device) bool {
	return d.Path == o.Path && d.Key == o.Key && d.Identity == o.Identity && d.Serial == o.Serial &&
		slices.Equal(d.Nodes, o.Nodes)
}

func sortProblems(ps []Problem) {
	slices.SortFunc(ps, func(a, b Problem) int {
		return cmp.Or(cmp.Compare(a.Path, b.Path), cmp.Compare(a.Reason, b.Reason))
	})
}
