package discover

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// maxHops is the kernel's limit on symlinks followed in one lookup.
const maxHops = 40

var errLoop = errors.New("too many levels of symbolic links")

// tree reads the host's filesystem under a root: the host path p is
// prefix+p, and symlinks resolve as if the root were "/".
type tree struct{ prefix string }

func openTree(root string) (tree, error) {
	if root == "" {
		return tree{}, errors.New("no root")
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return tree{}, fmt.Errorf("root %s: %w", root, err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return tree{}, fmt.Errorf("root: %w", err)
	}
	if !fi.IsDir() {
		return tree{}, fmt.Errorf("root %s: not a directory", root)
	}
	if abs == "/" {
		abs = ""
	}
	return tree{prefix: abs}, nil
}

// at returns where the host path p is on this machine.
func (t tree) at(p string) string {
	if p == "/" && t.prefix != "" {
		return t.prefix // no trailing slash: fsnotify keys watches by clean paths
	}
	return t.prefix + p
}

// resolve follows every symlink in the host path p within the tree (an
// absolute target starts again at the root, ".." stops at it) and returns
// the target's host path and its Lstat info.
func (t tree) resolve(p string) (string, fs.FileInfo, error) {
	return t.resolveFrom("/", p)
}

// resolveFrom resolves rest relative to cur, a resolved host dir.
func (t tree) resolveFrom(cur, rest string) (string, fs.FileInfo, error) {
	p := rest
	var fi fs.FileInfo
	for hops := 0; rest != ""; {
		var comp string
		comp, rest, _ = strings.Cut(rest, "/")
		switch comp {
		case "", ".":
			continue
		case "..":
			cur, fi = filepath.Dir(cur), nil
			continue
		}
		next := join(cur, comp)
		info, err := os.Lstat(t.at(next))
		if err != nil {
			return "", nil, err
		}
		if info.Mode()&fs.ModeSymlink == 0 {
			cur, fi = next, info
			continue
		}
		if hops++; hops > maxHops {
			return "", nil, fmt.Errorf("%s: %w", p, errLoop)
		}
		target, err := os.Readlink(t.at(next))
		if err != nil {
			return "", nil, err
		}
		if strings.HasPrefix(target, "/") {
			cur = "/"
		}
		if rest != "" {
			target += "/" + rest
		}
		rest, fi = target, nil
	}
	if fi == nil {
		info, err := os.Lstat(t.at(cur))
		if err != nil {
			return "", nil, err
		}
		fi = info
	}
	return cur, fi, nil
}

// names lists the entries of the host dir (already resolved), unsorted.
func (t tree) names(dir string) ([]string, error) {
	f, err := os.Open(t.at(dir))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}

func join(dir, name string) string {
	if dir == "/" {
		return "/" + name
	}
	return dir + "/" + name
}

// nodeKey names a device the kernel knows: two paths with the same key
// open the same device.
type nodeKey struct {
	block bool
	rdev  uint64
}

// keyOf returns the node's key; ok is false for anything but a char or
// block device.
func keyOf(fi fs.FileInfo) (nodeKey, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || fi.Mode()&fs.ModeDevice == 0 {
		return nodeKey{}, false
	}
	return nodeKey{block: fi.Mode()&fs.ModeCharDevice == 0, rdev: uint64(st.Rdev)}, true
}

func (k nodeKey) major() uint32 { return unix.Major(k.rdev) }
func (k nodeKey) minor() uint32 { return unix.Minor(k.rdev) }

// kindOf names what a non-device is, for a Problem.
func kindOf(mode fs.FileMode) string {
	switch {
	case mode.IsRegular():
		return "a regular file"
	case mode&fs.ModeSocket != 0:
		return "a socket"
	case mode&fs.ModeNamedPipe != 0:
		return "a named pipe"
	default:
		return fmt.Sprintf("a file of mode %s", mode.Type())
	}
}
