package discover

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// usbDevice is what sysfs says of the USB device a node belongs to.
type usbDevice struct{ vendor, product, serial string }

// usbOf finds the USB device of a match: of its node, or for a directory
// the first of its nodes that has one.
func (s *scanner) usbOf(m *match) *usbDevice {
	if !m.dir {
		return s.usbParent(m.node)
	}
	for _, n := range m.nodes {
		fi, err := os.Lstat(s.tree.at(n.HostPath))
		if err != nil {
			continue
		}
		if k, ok := keyOf(fi); ok {
			if u := s.usbParent(k); u != nil {
				return u
			}
		}
	}
	return nil
}

// usbParent maps a node to sysfs (/sys/dev/char/M:m links into
// /sys/devices) and walks up to the first directory with idVendor and
// idProduct: the USB device, above its interface and tty or block dirs.
func (s *scanner) usbParent(k nodeKey) *usbDevice {
	class := "char"
	if k.block {
		class = "block"
	}
	dev, fi, err := s.resolve(fmt.Sprintf("/sys/dev/%s/%d:%d", class, k.major(), k.minor()))
	if err != nil || !fi.IsDir() {
		return nil
	}
	for d := dev; strings.HasPrefix(d, "/sys/"); d = filepath.Dir(d) {
		vendor, err := s.attr(d, "idVendor")
		if err != nil {
			continue
		}
		product, err := s.attr(d, "idProduct")
		if err != nil {
			continue
		}
		serial, _ := s.attr(d, "serial") // many devices have none
		return &usbDevice{vendor: strings.ToLower(vendor), product: strings.ToLower(product), serial: serial}
	}
	return nil
}

func (s *scanner) attr(dir, name string) (string, error) {
	b, err := os.ReadFile(s.tree.at(join(dir, name)))
	return strings.TrimSpace(string(b)), err
}

// wanted reports whether the USB filter keeps a match's device.
func wanted(filter []USB, u *usbDevice) bool {
	if u == nil {
		return false
	}
	for _, f := range filter {
		if strings.EqualFold(f.Vendor, u.vendor) && strings.EqualFold(f.Product, u.product) &&
			(f.Serial == "" || f.Serial == u.serial) {
			return true
		}
	}
	return false
}
