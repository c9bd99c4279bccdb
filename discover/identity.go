package discover

import (
	"fmt"
	"slices"
)

// byIDDirs hold udev's stable names; serial first, as discover is mostly
// about serial adapters.
var byIDDirs = []string{"/dev/serial/by-id", "/dev/disk/by-id"}

// identity gives a match an identity that follows the physical device
// rather than the kernel name, which is reused when another one is plugged.
func (s *scanner) identity(m *match) string {
	switch {
	case m.dir:
		return "dir:" + m.path
	case m.usb != nil && m.usb.serial != "":
		return fmt.Sprintf("usb:%s:%s:%s", m.usb.vendor, m.usb.product, m.usb.serial)
	}
	if name, ok := s.byIDNames()[m.node]; ok {
		return "by-id:" + name
	}
	return fmt.Sprintf("dev:%d:%d", m.node.major(), m.node.minor())
}

// byIDNames maps nodes to their first by-id name, read once per scan.
func (s *scanner) byIDNames() map[nodeKey]string {
	if s.byID != nil {
		return s.byID
	}
	s.byID = map[nodeKey]string{}
	for _, dir := range byIDDirs {
		rdir, ok := s.lookInto(dir)
		if !ok {
			continue
		}
		names, err := s.tree.names(rdir)
		if err != nil {
			continue
		}
		slices.Sort(names)
		for _, name := range names {
			_, fi, err := s.resolve(join(rdir, name))
			if err != nil {
				continue
			}
			if k, ok := keyOf(fi); ok {
				if _, taken := s.byID[k]; !taken {
					s.byID[k] = name
				}
			}
		}
	}
	return s.byID
}
