// Package atomicfile replaces files so that a reader never sees half of
// one: the content goes to a temporary file in the same directory, which
// is renamed over the file, and the rename is made durable.
package atomicfile

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// Write makes path hold what r reads, with mode perm. A running binary at
// path is replaced, not overwritten. Temporary files of this path left by
// a writer that was killed are removed first.
func Write(path string, r io.Reader, perm fs.FileMode) (err error) {
	dir, prefix := filepath.Dir(path), "."+filepath.Base(path)+".tmp-"
	if stale, _ := filepath.Glob(filepath.Join(dir, prefix+"*")); len(stale) > 0 {
		for _, f := range stale {
			_ = os.Remove(f)
		}
	}
	tmp, err := os.CreateTemp(dir, prefix+"*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if _, err := io.Copy(tmp, r); err != nil {
		return fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	// CreateTemp makes 0600.
	if err := tmp.Chmod(perm); err != nil {
		return fmt.Errorf("chmod %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("rename over %s: %w", path, err)
	}
	// The rename lives in the directory: sync it too, so that a power cut
	// right after keeps the new file. Some file systems cannot; the file
	// is in place either way.
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}
