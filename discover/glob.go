package discover

import (
	"os"
	"path/filepath"
	"strings"
)

// glob returns the host paths pattern matches, like filepath.Glob but
// inside the tree: a directory is read only after resolving it within the
// root. Every directory it looks into is followed for the watcher.
func (s *scanner) glob(pattern string) []string {
	if pattern == "/" {
		return []string{"/"}
	}
	comps := strings.Split(pattern[1:], "/")
	cands := []string{"/"}
	for i, comp := range comps {
		last, meta := i == len(comps)-1, hasMeta(comp)
		if !meta && !last {
			// Nothing to look at yet: the next glob or the last
			// component looks into the whole prefix at once.
			for j := range cands {
				cands[j] = join(cands[j], comp)
			}
			continue
		}
		var next []string
		for _, dir := range cands {
			rdir, ok := s.lookInto(dir)
			if !ok {
				continue
			}
			if !meta {
				if _, err := os.Lstat(s.tree.at(join(rdir, comp))); err == nil {
					next = append(next, join(dir, comp))
				}
				continue
			}
			names, err := s.tree.names(rdir)
			if err != nil {
				continue // vanished or unreadable: no matches, as filepath.Glob
			}
			for _, name := range names {
				if ok, _ := filepath.Match(comp, name); ok {
					next = append(next, join(dir, name))
				}
			}
		}
		cands = next
	}
	return cands
}

// lookInto resolves the host dir within the tree and follows it; a dir
// that is missing is not, so its nearest existing ancestor is followed to
// see it appear.
func (s *scanner) lookInto(dir string) (string, bool) {
	rdir, err := s.resolveDir(dir)
	if err == nil {
		s.follow(rdir)
		return rdir, true
	}
	if s.watch != nil {
		for d := dir; d != "/"; {
			d = filepath.Dir(d)
			if rdir, err := s.resolveDir(d); err == nil {
				s.follow(rdir)
				break
			}
		}
	}
	return "", false
}

// follow marks a resolved host dir for the watcher.
func (s *scanner) follow(dir string) {
	if s.watch != nil {
		s.watch[dir] = true
	}
}
