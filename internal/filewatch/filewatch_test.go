package filewatch

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Each way a file changes brings a check, for the reason it happened.
func TestRun(t *testing.T) {
	dir := t.TempDir()
	// A ConfigMap mount: manifest.yaml -> ..data/manifest.yaml, ..data -> ..v1.
	for _, v := range []string{"..v1", "..v2"} {
		if err := os.Mkdir(filepath.Join(dir, v), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("..v1", filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("..data/manifest.yaml", filepath.Join(dir, "manifest.yaml")); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(t.TempDir(), "target.yaml")

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	trigger := make(chan struct{}, 1)
	reasons := make(chan Reason, 16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		// Poll an hour: only events and the trigger bring checks here.
		Watch{Files: []string{filepath.Join(dir, "manifest.yaml"), other}, Debounce: 10 * time.Millisecond, Poll: time.Hour, Trigger: trigger}.
			Run(ctx, func(r Reason) { reasons <- r })
	}()
	next := func(what string) Reason {
		t.Helper()
		select {
		case r := <-reasons:
			return r
		case <-ctx.Done():
			t.Fatalf("no check after %s", what)
		}
		return -1
	}
	if r := next("start"); r != Started {
		t.Fatalf("first check: %v, want Started", r)
	}
	for _, tc := range []struct {
		what   string
		change func() error
		want   Reason
	}{
		{"the ..data swap", func() error {
			tmp := filepath.Join(dir, "..data_tmp")
			if err := os.Symlink("..v2", tmp); err != nil {
				return err
			}
			return os.Rename(tmp, filepath.Join(dir, "..data"))
		}, Changed},
		{"a write to the other file", func() error { return os.WriteFile(other, []byte("x"), 0o644) }, Changed},
		{"a rename over the other file", func() error {
			if err := os.WriteFile(other+".tmp", []byte("y"), 0o644); err != nil {
				return err
			}
			return os.Rename(other+".tmp", other)
		}, Changed},
		{"the trigger", func() error { trigger <- struct{}{}; return nil }, Triggered},
	} {
		if err := tc.change(); err != nil {
			t.Fatal(err)
		}
		if r := next(tc.what); r != tc.want {
			t.Errorf("%s: %v, want %v", tc.what, r, tc.want)
		}
		for len(reasons) > 0 { // a burst may bring a second check; one is what counts
			<-reasons
		}
	}
	cancel()
	<-done
}

// Without file events the poll finds the change.
func TestRunPolls(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	reasons := make(chan Reason, 4)
	done := make(chan struct{})
	go func() {
		defer close(done)
		Watch{Files: []string{"/nonexistent/dir/file"}, Poll: 10 * time.Millisecond}.Run(ctx, func(r Reason) {
			select {
			case reasons <- r:
			default:
			}
		})
	}()
	defer func() { cancel(); <-done }()
	for _, want := range []Reason{Started, Polled} {
		select {
		case r := <-reasons:
			if r != want {
				t.Fatalf("check %v, want %v", r, want)
			}
		case <-ctx.Done():
			t.Fatalf("no check %v", want)
		}
	}
}
