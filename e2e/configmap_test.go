package e2e

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// configMapVolume lays a file out exactly as the kubelet projects a
// ConfigMap key into a pod (pkg/volume/util.AtomicWriter):
//
//	dir/..2026_01_02_15_04_05.123456789/manifest.yaml   the data
//	dir/..data -> ..2026_01_02_15_04_05.123456789       swapped atomically
//	dir/manifest.yaml -> ..data/manifest.yaml           never changes
//
// An update writes a new timestamped directory, points a new ..data_tmp
// symlink at it, renames ..data_tmp over ..data, and removes the old
// directory. The file the host was given never changes inode; only the
// ..data symlink does.
type configMapVolume struct {
	t       testing.TB
	dir     string
	key     string
	current string // name of the timestamped directory ..data points at
}

func newConfigMapVolume(t testing.TB, key, content string) *configMapVolume {
	t.Helper()
	v := &configMapVolume{t: t, dir: t.TempDir(), key: key}
	v.update(content)
	if err := os.Symlink(filepath.Join("..data", key), filepath.Join(v.dir, key)); err != nil {
		t.Fatalf("configmap: link %s: %v", key, err)
	}
	return v
}

// path is the file as the pod sees it: dir/key.
func (v *configMapVolume) path() string { return filepath.Join(v.dir, v.key) }

// update swaps in new content the way the kubelet does.
func (v *configMapVolume) update(content string) {
	v.t.Helper()
	var tsDir string
	for {
		tsDir = time.Now().Format("..2006_01_02_15_04_05.000000000")
		if _, err := os.Lstat(filepath.Join(v.dir, tsDir)); os.IsNotExist(err) {
			break
		}
	}
	if err := os.Mkdir(filepath.Join(v.dir, tsDir), 0o755); err != nil {
		v.t.Fatalf("configmap: %v", err)
	}
	if err := os.WriteFile(filepath.Join(v.dir, tsDir, v.key), []byte(content), 0o644); err != nil {
		v.t.Fatalf("configmap: %v", err)
	}
	tmpLink := filepath.Join(v.dir, "..data_tmp")
	if err := os.Symlink(tsDir, tmpLink); err != nil {
		v.t.Fatalf("configmap: %v", err)
	}
	if err := os.Rename(tmpLink, filepath.Join(v.dir, "..data")); err != nil {
		v.t.Fatalf("configmap: swap ..data: %v", err)
	}
	if v.current != "" {
		if err := os.RemoveAll(filepath.Join(v.dir, v.current)); err != nil {
			v.t.Fatalf("configmap: remove old data: %v", err)
		}
	}
	v.current = tsDir
}
