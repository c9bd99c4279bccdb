package cli

import (
	"runtime"
	"runtime/debug"
	"testing"
)

// The version comes from ldflags when the build stamped it, else from what
// the Go toolchain recorded: the module version under go install, the VCS
// revision under go build in a clone.
func TestResolveVersion(t *testing.T) {
	vcs := func(rev, modified string) []debug.BuildSetting {
		return []debug.BuildSetting{{Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: modified}}
	}
	tests := []struct {
		name                    string
		ldVersion, ldCommit     string
		bi                      *debug.BuildInfo
		wantVersion, wantCommit string
	}{
		{"ldflags win", "v1.2.3", "abc123", &debug.BuildInfo{Main: debug.Module{Version: "v0.0.1"}, Settings: vcs("def", "false")}, "v1.2.3", "abc123"},
		{"go install module@version", "", "", &debug.BuildInfo{Main: debug.Module{Version: "v0.4.0"}}, "v0.4.0", "unknown"},
		{"go build in a clone", "", "", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs("0123456789abcdef", "false")}, "dev", "0123456789abcdef"},
		{"go build with local changes", "", "", &debug.BuildInfo{Main: debug.Module{Version: "v0.0.0-20261207-0123456789ab+dirty"}, Settings: vcs("0123456789abcdef", "true")}, "v0.0.0-20261207-0123456789ab+dirty", "0123456789abcdef-dirty"},
		{"no build information", "", "", nil, "dev", "unknown"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := resolveVersion(tc.ldVersion, tc.ldCommit, tc.bi)
			if got.Version != tc.wantVersion || got.Commit != tc.wantCommit {
				t.Errorf("version %q commit %q, want %q %q", got.Version, got.Commit, tc.wantVersion, tc.wantCommit)
			}
			if got.GoVersion != runtime.Version() || got.Platform != runtime.GOOS+"/"+runtime.GOARCH {
				t.Errorf("go %q platform %q", got.GoVersion, got.Platform)
			}
		})
	}
}
