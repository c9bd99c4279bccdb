package discover

import (
	"errors"
	"fmt"

	"github.com/fsnotify/fsnotify"
	"golang.org/x/sys/unix"
)

// dirWatch keeps fsnotify on the directories the last scan looked into.
type dirWatch struct {
	fs   *fsnotify.Watcher
	tree tree
	// have maps each watched dir (as on this machine) to the inode watched:
	// a dir removed and made again at the same path needs a new watch.
	// The inode alone cannot tell (a new dir often reuses it), so the
	// dir's own removal, seen as an event, drops it too.
	have map[string]fileID
}

type fileID struct{ dev, ino uint64 }

func newDirWatch(fw *fsnotify.Watcher, t tree) *dirWatch {
	return &dirWatch{fs: fw, tree: t, have: map[string]fileID{}}
}

// sync watches exactly the wanted host dirs. added says a watch is new:
// what happened in that dir before it was watched is seen only by another
// scan. err joins the dirs that could not be watched.
func (d *dirWatch) sync(want map[string]bool) (added bool, err error) {
	var errs []error
	for path, id := range d.have {
		if cur, ok := d.id(path); !ok || cur != id || !want[d.hostPath(path)] {
			_ = d.fs.Remove(path) // fails when the kernel dropped it with the dir
			delete(d.have, path)
		}
	}
	for dir := range want {
		path := d.tree.at(dir)
		if _, ok := d.have[path]; ok {
			continue
		}
		id, ok := d.id(path)
		if !ok {
			continue // gone since the scan: the next event or rescan sees it
		}
		if err := d.fs.Add(path); err != nil {
			errs = append(errs, fmt.Errorf("watch %s: %w", path, err))
			continue
		}
		d.have[path], added = id, true
	}
	return added, errors.Join(errs...)
}

// seen drops the watch of a dir that an event says was removed or moved
// away, so the next sync watches whatever is at its path now.
func (d *dirWatch) seen(ev fsnotify.Event) {
	if d == nil || !ev.Has(fsnotify.Remove) && !ev.Has(fsnotify.Rename) {
		return
	}
	if _, ok := d.have[ev.Name]; ok {
		_ = d.fs.Remove(ev.Name) // fails when the kernel dropped it with the dir
		delete(d.have, ev.Name)
	}
}

func (d *dirWatch) hostPath(path string) string {
	if d.tree.prefix == "" {
		return path
	}
	if p := path[len(d.tree.prefix):]; p != "" {
		return p
	}
	return "/"
}

func (d *dirWatch) id(path string) (fileID, bool) {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return fileID{}, false
	}
	return fileID{uint64(st.Dev), uint64(st.Ino)}, true
}
