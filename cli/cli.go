// Package cli is the command line of simple-device-plugin: the run,
// validate, simulate, version and help commands, their flags and the SDP_*
// environment variables that stand in for them. The main package only wires
// it to the process.
package cli

import (
	"context"
	"fmt"
	"io"
)

// version is stamped at build time with
// -ldflags "-X simple-device-plugin/cli.version=...".
var version = "dev"

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1 // invalid manifest, failed run
	exitUsage   = 2 // bad flags or arguments
)

// Main runs the command line (args without the program name) and returns
// the process's exit code. ctx ends the run command, as SIGTERM does.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd, rest := "run", args
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, rest = args[0], args[1:]
	}
	switch cmd {
	case "run":
		return runCommand(ctx, rest, stdout, stderr)
	case "validate":
		return validateCommand(rest, stdout, stderr)
	case "simulate":
		return simulateCommand(ctx, rest, stdout, stderr)
	case "version":
		fmt.Fprintf(stdout, "simple-device-plugin %s\n", version)
		return exitOK
	case "help":
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	fmt.Fprintf(stderr, "unknown command %q\n\n%s", cmd, usage)
	return exitUsage
}

const usage = `Usage:
  simple-device-plugin [run] --manifest FILE [--device-plugin-dir DIR] [--listen ADDR]
                       [--log-format text|json] [--log-level LEVEL] [--node-name NAME]
                       [--registration auto|kubelet-socket|plugins-registry]
                       [--plugins-registry-dir DIR] [--poll DURATION]
  simple-device-plugin validate FILE...
  simple-device-plugin simulate --manifest FILE [--request NAME=N,...] [--containers N]
                       [--node-name NAME] [--output text|yaml|json]
  simple-device-plugin version
  simple-device-plugin help

"simple-device-plugin COMMAND -h" describes a command's flags. Every flag of
run and simulate can also be set with an SDP_* environment variable
(--device-plugin-dir is SDP_DEVICE_PLUGIN_DIR); a flag wins over the variable.
Exit codes: 0 success, 1 failure (invalid manifest, request that cannot be
met, run stopped by an error), 2 usage error.
`

// profileStop holds what flushes the profiles of a profiling build
// (profile.go, -tags sdpprofile); it is empty otherwise.
var profileStop []func()

// FlushProfiles writes out the profiles of a profiling build. The process
// calls it once, after Main returns and before it exits, so a CPU profile
// covers the whole run.
func FlushProfiles() {
	for _, stop := range profileStop {
		stop()
	}
}
