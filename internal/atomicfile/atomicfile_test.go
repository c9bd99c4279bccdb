package atomicfile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "manifest.yaml")
	stale := filepath.Join(dir, ".manifest.yaml.tmp-123") // a killed writer's
	if err := os.WriteFile(stale, []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, content := range []string{"first\n", "second\n"} {
		if err := Write(path, strings.NewReader(content), 0o644); err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(path)
		fi, _ := os.Stat(path)
		if err != nil || string(data) != content || fi.Mode().Perm() != 0o644 {
			t.Errorf("after writing %q: %q, mode %v, %v", content, data, fi.Mode(), err)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("left in the dir: %v", entries)
	}
}

// A failed write leaves the file as it was and no temporary file.
func TestWriteFails(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "file")
	if err := os.Mkdir(path, 0o755); err != nil { // a dir stands there: the rename fails
		t.Fatal(err)
	}
	if err := Write(path, strings.NewReader("x"), 0o644); err == nil {
		t.Fatal("no error renaming over a directory")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || !entries[0].IsDir() {
		t.Errorf("left in the dir: %v", entries)
	}
}
