package host

import (
	"os"
	"testing"
)

// ShortTempDir returns a temp dir with a short path, removed when the test
// ends: unix socket paths are limited to 108 bytes, which t.TempDir's long
// names can exceed. Exported for package host_test, which shares it.
func ShortTempDir(tb testing.TB) string {
	tb.Helper()
	dir, err := os.MkdirTemp("", "sdp")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}
