package discover

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

// match is one glob match that is a device node or a directory of them.
type match struct {
	path     string // host view, as matched
	resolved string // host view, symlinks resolved
	dir      bool
	node     nodeKey // of a node match
	nodes    []Node  // sorted by Path
	usb      *usbDevice
	identity string
	key      string // group key
}

// same names what a match is, so two paths to one node are one device.
func (m *match) same() any {
	if m.dir {
		return m.resolved
	}
	return m.node
}

// inspect resolves a match and collects its nodes; a match that is not a
// device is a Problem.
func (s *scanner) inspect(p string) (*match, *Problem) {
	resolved, fi, err := s.resolve(p)
	if err != nil {
		return nil, s.unresolvable(p, err)
	}
	m := &match{path: p, resolved: resolved}
	if resolved != p {
		// A link's target can go while the link stays.
		s.follow(filepath.Dir(resolved))
	}
	switch mode := fi.Mode(); {
	case mode&fs.ModeDevice != 0:
		m.node, _ = keyOf(fi)
		m.nodes = []Node{{Path: p, HostPath: resolved}}
	case mode.IsDir():
		m.dir = true
		if m.nodes, err = s.nodesUnder(p, resolved); err != nil {
			return nil, &Problem{p, fmt.Sprintf("cannot read the directory: %v", err)}
		}
		if len(m.nodes) == 0 {
			return nil, &Problem{p, "a directory with no device nodes under it"}
		}
	default:
		return nil, &Problem{p, kindOf(mode) + ", not a device node or directory"}
	}
	return m, nil
}

func (s *scanner) unresolvable(p string, err error) *Problem {
	switch {
	case errors.Is(err, errLoop):
		return &Problem{p, "too many levels of symbolic links"}
	case errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR):
		if target, ok := s.linkTarget(p); ok {
			return &Problem{p, fmt.Sprintf("dangling symlink to %s", target)}
		}
		return &Problem{p, "gone while scanning"}
	}
	return &Problem{p, fmt.Sprintf("cannot resolve: %v", err)}
}

// linkTarget reads the symlink at p, its dir resolved within the tree.
func (s *scanner) linkTarget(p string) (string, bool) {
	dir, name := filepath.Split(p)
	rdir, err := s.resolveDir(filepath.Clean(dir))
	if err != nil {
		return "", false
	}
	target, err := os.Readlink(s.tree.at(join(rdir, name)))
	return target, err == nil
}

// nodesUnder lists the char and block nodes under a directory match, at
// any depth; symlinks in it are not followed (they point at its own nodes,
// like /dev/snd/by-path).
func (s *scanner) nodesUnder(p, resolved string) ([]Node, error) {
	var nodes []Node
	base := s.tree.at(resolved)
	err := filepath.WalkDir(base, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := strings.TrimPrefix(path, base)
		if d.IsDir() {
			s.follow(under(resolved, rel))
			return nil
		}
		if d.Type()&fs.ModeDevice != 0 {
			nodes = append(nodes, Node{Path: under(p, rel), HostPath: under(resolved, rel)})
		}
		return nil
	})
	// WalkDir sorts each directory, which is not the order of whole paths
	// ("a/b-c" sorts before "a/b/c").
	slices.SortFunc(nodes, byPath)
	return nodes, err
}

// under appends rel ("" or "/x/y") to the host dir.
func under(dir, rel string) string {
	if dir == "/" && rel != "" {
		return rel
	}
	return dir + rel
}

func byPath(a, b Node) int { return strings.Compare(a.Path, b.Path) }
