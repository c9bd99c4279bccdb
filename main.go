// Command simple-device-plugin serves many virtual Kubernetes extended
// resources from one process, one kubelet device plugin per resource,
// declared in a YAML manifest. See README.md.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1 // invalid manifest, failed run
	exitUsage   = 2 // bad flags or arguments
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	code := Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Main runs the command line and returns the exit code.
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
