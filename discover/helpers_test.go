package discover

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// fakeRoot is a temp dir standing for the host's "/": paths given to its
// methods are host paths.
type fakeRoot struct {
	tb  testing.TB
	dir string
}

func newRoot(tb testing.TB) *fakeRoot {
	tb.Helper()
	r := &fakeRoot{tb: tb, dir: tb.TempDir()}
	r.mkdir("/dev")
	r.mkdir("/sys")
	return r
}

func (r *fakeRoot) at(p string) string { return filepath.Join(r.dir, p) }

func (r *fakeRoot) mkdir(p string) {
	r.tb.Helper()
	if err := os.MkdirAll(r.at(p), 0o755); err != nil {
		r.tb.Fatal(err)
	}
}

// char makes a char device node, skipping the test where that is not
// allowed (it needs CAP_MKNOD: root, as in CI).
func (r *fakeRoot) char(p string, major, minor uint32) {
	r.tb.Helper()
	r.mknod(p, unix.S_IFCHR, major, minor)
}

func (r *fakeRoot) block(p string, major, minor uint32) {
	r.tb.Helper()
	r.mknod(p, unix.S_IFBLK, major, minor)
}

func (r *fakeRoot) mknod(p string, kind, major, minor uint32) {
	r.tb.Helper()
	r.mkdir(filepath.Dir(p))
	if err := mknod(r.at(p), kind, major, minor); errors.Is(err, unix.EPERM) {
		r.tb.Skipf("cannot make device nodes here (needs CAP_MKNOD): %v", err)
	} else if err != nil {
		r.tb.Fatal(err)
	}
}

func mknod(path string, kind, major, minor uint32) error {
	if err := unix.Mknod(path, kind|0o666, int(unix.Mkdev(major, minor))); err != nil {
		return fmt.Errorf("mknod %s: %w", path, err)
	}
	return nil
}

func (r *fakeRoot) file(p, content string) {
	r.tb.Helper()
	r.mkdir(filepath.Dir(p))
	if err := os.WriteFile(r.at(p), []byte(content), 0o644); err != nil {
		r.tb.Fatal(err)
	}
}

func (r *fakeRoot) link(p, target string) {
	r.tb.Helper()
	r.mkdir(filepath.Dir(p))
	if err := os.Symlink(target, r.at(p)); err != nil {
		r.tb.Fatal(err)
	}
}

func (r *fakeRoot) remove(p string) {
	r.tb.Helper()
	if err := os.RemoveAll(r.at(p)); err != nil {
		r.tb.Fatal(err)
	}
}

// usbTTY lays out a USB serial adapter as the kernel does: the USB device
// dir (idVendor, idProduct, serial if not "") at port, its interface, the
// tty dir deeper, /sys/dev/char/M:m linking there (relative), and the node.
func (r *fakeRoot) usbTTY(port, vendor, product, serial, tty string, major, minor uint32) {
	r.tb.Helper()
	usbDir := "/sys/devices/pci0000:00/0000:00:14.0/usb1/" + port
	r.file(usbDir+"/idVendor", vendor+"\n")
	r.file(usbDir+"/idProduct", product+"\n")
	if serial != "" {
		r.file(usbDir+"/serial", serial+"\n")
	}
	r.ttyIn(usbDir+"/"+port+":1.0/"+tty+"/tty/"+tty, tty, major, minor)
}

// ttyIn makes a tty's sysfs dir, its /sys/dev/char link and its node.
func (r *fakeRoot) ttyIn(sysDir, tty string, major, minor uint32) {
	r.tb.Helper()
	r.file(sysDir+"/dev", fmt.Sprintf("%d:%d\n", major, minor))
	r.link(fmt.Sprintf("/sys/dev/char/%d:%d", major, minor), "../.."+sysDir[len("/sys"):])
	r.char("/dev/"+tty, major, minor)
}

func (r *fakeRoot) scan(s Spec, max int) Result {
	r.tb.Helper()
	res, err := Scan(r.dir, s, max)
	if err != nil {
		r.tb.Fatalf("Scan: %v", err)
	}
	return res
}

// node is a Device of one node matched at its own path.
func node(path, identity string) Device {
	return Device{Path: path, Nodes: []Node{{path, path}}, Identity: identity}
}

func devicePaths(r Result) []string {
	var paths []string
	for _, d := range r.Devices {
		paths = append(paths, d.Path)
	}
	return paths
}

func checkResult(t *testing.T, got, want Result) {
	t.Helper()
	if !got.Equal(want) {
		t.Errorf("got\n%s\nwant\n%s", dump(got), dump(want))
	}
}

func dump(r Result) string {
	s := ""
	for _, d := range r.Devices {
		s += fmt.Sprintf("  device %+v\n", d)
	}
	for _, p := range r.Problems {
		s += fmt.Sprintf("  problem %+v\n", p)
	}
	if s == "" {
		return "  (nothing)"
	}
	return s
}
