package cli

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// version and commit are stamped at build time (make build, the image):
// -ldflags "-X simple-device-plugin/cli.version=... -X simple-device-plugin/cli.commit=...".
// Without them (go build, go install), the module's build information
// stands in.
var (
	version = ""
	commit  = ""
)

// buildInfo is what `version` prints.
type buildInfo struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	GoVersion string `json:"goVersion"`
	Platform  string `json:"platform"`
}

// versionInfo resolves the version: ldflags first, then what the Go
// toolchain recorded (the module version under go install, the VCS
// revision under go build in a clone), then "dev" and "unknown".
func versionInfo() buildInfo {
	bi, _ := debug.ReadBuildInfo()
	return resolveVersion(version, commit, bi)
}

// resolveVersion is versionInfo for given ldflags values and build
// information (nil when the binary has none).
func resolveVersion(version, commit string, bi *debug.BuildInfo) buildInfo {
	info := buildInfo{Version: version, Commit: commit, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi != nil {
		if info.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			info.Version = bi.Main.Version
		}
		if info.Commit == "" {
			var revision, modified string
			for _, s := range bi.Settings {
				switch s.Key {
				case "vcs.revision":
					revision = s.Value
				case "vcs.modified":
					modified = s.Value
				}
			}
			if revision != "" && modified == "true" {
				revision += "-dirty"
			}
			info.Commit = revision
		}
	}
	if info.Version == "" {
		info.Version = "dev"
	}
	if info.Commit == "" {
		info.Commit = "unknown"
	}
	return info
}

// text is the human form, also what --version prints.
func (b buildInfo) text() string {
	return fmt.Sprintf("simple-device-plugin %s\n  commit:   %s\n  go:       %s\n  platform: %s\n", b.Version, b.Commit, b.GoVersion, b.Platform)
}

func newVersionCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit, Go version and platform",
		Args:  noArgs,
	}
	output := newChoice(cmd.Flags(), "output", "o", "text", "output format", "text", "json")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		info := versionInfo()
		if *output == "json" {
			return writeAs(cmd.OutOrStdout(), "json", info)
		}
		_, err := fmt.Fprint(cmd.OutOrStdout(), info.text())
		return err
	}
	return cmd
}

// noArgs is the positional arguments of a command that takes none.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageErrorf("%s takes no arguments, got %q", cmd.CommandPath(), args)
	}
	return nil
}
