package discover

import (
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

// Scan finds the devices s describes under root ("/" on a host; the host
// paths in s and in the Result are without it), at most max of them
// (max <= 0: no bound). The error is only for an unusable spec or root;
// trouble with one match is a Problem.
func Scan(root string, s Spec, max int) (Result, error) {
	return scan(root, s, max, nil)
}

// scanner holds one scan's state.
type scanner struct {
	tree tree
	// watch collects the resolved host dirs a watcher must follow to see
	// the result change; nil when nobody watches.
	watch map[string]bool
	byID  map[nodeKey]string // built on first use
	// dirs caches resolved parent dirs: the thousands of matches of one
	// glob share theirs.
	dirs map[string]resolvedDir
}

type resolvedDir struct {
	path string
	err  error
}

// resolve is tree.resolve with p's parent resolved once per scan.
func (s *scanner) resolve(p string) (string, fs.FileInfo, error) {
	if p == "/" {
		return s.tree.resolve(p)
	}
	dir, name := filepath.Split(p)
	rdir, err := s.resolveDir(filepath.Clean(dir))
	if err != nil {
		return "", nil, err
	}
	return s.tree.resolveFrom(rdir, name)
}

// resolveDir resolves a host dir; anything but a dir there is ENOTDIR.
func (s *scanner) resolveDir(dir string) (string, error) {
	if r, ok := s.dirs[dir]; ok {
		return r.path, r.err
	}
	r, fi, err := s.resolve(dir)
	if err == nil && !fi.IsDir() {
		err = fmt.Errorf("%s: %w", dir, syscall.ENOTDIR)
	}
	s.dirs[dir] = resolvedDir{r, err}
	return r, err
}

func scan(root string, s Spec, max int, watch map[string]bool) (Result, error) {
	if err := s.Validate(); err != nil {
		return Result{}, fmt.Errorf("discover: %w", err)
	}
	t, err := openTree(root)
	if err != nil {
		return Result{}, fmt.Errorf("discover: %w", err)
	}
	sc := &scanner{tree: t, watch: watch, dirs: map[string]resolvedDir{}}
	var paths []string
	for _, p := range s.patterns() {
		paths = append(paths, sc.glob(p)...)
	}
	slices.Sort(paths)
	paths = slices.Compact(paths)

	var res Result
	var matches []*match
	seen := map[any]bool{}
	for _, p := range paths {
		m, problem := sc.inspect(p)
		if problem != nil {
			res.Problems = append(res.Problems, *problem)
			continue
		}
		// Paths are sorted, so the first path to a node is the one kept.
		if seen[m.same()] {
			continue
		}
		seen[m.same()] = true
		if m.usb = sc.usbOf(m); len(s.USB) > 0 && !wanted(s.USB, m.usb) {
			continue
		}
		m.identity = sc.identity(m)
		matches = append(matches, m)
	}

	if s.Groups != nil {
		var problems []Problem
		res.Devices, problems = group(matches, s.Groups)
		res.Problems = append(res.Problems, problems...)
	} else {
		for _, m := range matches {
			res.Devices = append(res.Devices, m.device())
		}
	}
	if max > 0 && len(res.Devices) > max {
		cut := len(res.Devices) - max
		res.Problems = append(res.Problems, Problem{res.Devices[max].Path,
			fmt.Sprintf("over the limit of %d: %d left out, from this one on", max, cut)})
		res.Devices = res.Devices[:max:max]
	}
	sortProblems(res.Problems)
	return res, nil
}

func (m *match) device() Device {
	d := Device{Path: m.path, Key: m.key, Nodes: m.nodes, Identity: m.identity}
	if m.usb != nil {
		d.Serial = m.usb.serial
	}
	return d
}

// group ties matches with the same key into one device, sorted by key.
func group(matches []*match, g *Groups) ([]Device, []Problem) {
	var problems []Problem
	byKey := map[string][]*match{}
	for _, m := range matches {
		base := m.path[strings.LastIndexByte(m.path, '/')+1:]
		found := g.Key.FindStringSubmatch(base)
		if found == nil {
			problems = append(problems, Problem{m.path, fmt.Sprintf("the name does not match the group key %s", g.Key)})
			continue
		}
		key := found[0]
		if len(found) > 1 {
			key = found[1]
		}
		if key == "" {
			problems = append(problems, Problem{m.path, fmt.Sprintf("the group key %s is empty for this name", g.Key)})
			continue
		}
		m.key = key
		byKey[key] = append(byKey[key], m)
	}
	devices := make([]Device, 0, len(byKey))
	for _, members := range byKey {
		// Members came in path order: the first is the device's face.
		d := members[0].device()
		d.Nodes = nil
		for _, m := range members {
			d.Nodes = append(d.Nodes, m.nodes...)
		}
		d.Nodes = uniqueNodes(d.Nodes)
		devices = append(devices, d)
	}
	slices.SortFunc(devices, func(a, b Device) int { return strings.Compare(a.Key, b.Key) })
	return devices, problems
}

// uniqueNodes sorts nodes by Path and keeps the first of those sharing a
// HostPath (a directory member and a node inside it), so the runtime is
// never handed one node twice.
func uniqueNodes(nodes []Node) []Node {
	slices.SortFunc(nodes, byPath)
	seen := make(map[string]bool, len(nodes))
	return slices.DeleteFunc(nodes, func(n Node) bool {
		if seen[n.HostPath] {
			return true
		}
		seen[n.HostPath] = true
		return false
	})
}
