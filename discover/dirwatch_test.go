package discover

import (
	"slices"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
)

// sync follows the wanted set: new dirs added, dirs no longer wanted or
// gone dropped, a dir made again at the same path watched anew.
func TestDirWatchSync(t *testing.T) {
	r := newRoot(t)
	r.mkdir("/dev/a")
	r.mkdir("/dev/b")
	tr, err := openTree(r.dir)
	if err != nil {
		t.Fatal(err)
	}
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		t.Fatal(err)
	}
	defer fw.Close()
	d := newDirWatch(fw, tr)
	watching := func(want ...string) {
		t.Helper()
		var got []string
		for _, p := range fw.WatchList() {
			got = append(got, d.hostPath(p))
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("watching %v, want %v", got, want)
		}
	}
	step := func(wantAdded bool, dirs ...string) {
		t.Helper()
		want := map[string]bool{}
		for _, dir := range dirs {
			want[dir] = true
		}
		added, err := d.sync(want)
		if err != nil || added != wantAdded {
			t.Errorf("sync(%v) = %v, %v; want %v, nil", dirs, added, err, wantAdded)
		}
	}

	step(true, "/", "/dev/a", "/dev/b", "/dev/missing")
	watching("/", "/dev/a", "/dev/b")
	step(false, "/", "/dev/a", "/dev/b")
	step(false, "/dev/a")
	watching("/dev/a")

	// Made again at once, the dir may have the same inode: its removal
	// event is what tells.
	r.remove("/dev/a")
	r.mkdir("/dev/a")
	d.seen(waitEvent(t, fw, fsnotify.Remove, r.at("/dev/a")))
	step(true, "/dev/a")
	watching("/dev/a")
	r.file("/dev/a/new", "")
	waitEvent(t, fw, fsnotify.Create, r.at("/dev/a/new"))
}

func waitEvent(t *testing.T, fw *fsnotify.Watcher, op fsnotify.Op, name string) fsnotify.Event {
	t.Helper()
	timeout := time.After(waitLimit)
	for {
		select {
		case ev := <-fw.Events:
			if ev.Has(op) && ev.Name == name {
				return ev
			}
		case err := <-fw.Errors:
			t.Fatal(err)
		case <-timeout:
			t.Fatalf("no %s event for %s", op, name)
		}
	}
}
