// Package cli is the command line of simple-device-plugin: the run,
// validate, simulate and version commands on cobra, their flags and the
// SDP_* environment variables that stand in for them. The main package only
// wires it to the process.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1 // invalid manifest, request that cannot be met, failed run
	exitUsage   = 2 // bad flags or arguments
)

// usageError is a mistake on the command line: exit 2, with a pointer to
// the command's help.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usageErrorf(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// errReported is a failure whose details the command has printed already.
var errReported = errors.New("failed")

// Main runs the command line (args without the program name) and returns
// the process's exit code. ctx ends the run command, as SIGTERM does.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return MainWithInput(ctx, args, os.Stdin, stdout, stderr)
}

// MainWithInput is Main reading "-" (a manifest on standard input) from stdin.
func MainWithInput(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := newRoot()
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetArgs(twoDashes(root, args))
	cmd, err := root.ExecuteContextC(ctx)
	if err != nil && strings.HasPrefix(err.Error(), "unknown command") {
		err = unknownCommand(err, args)
	}
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, errReported):
		return exitFailure
	case errors.As(err, new(usageError)):
		fmt.Fprintf(stderr, "Error: %v\nSee '%s --help'.\n", err, cmd.CommandPath())
		return exitUsage
	}
	fmt.Fprintf(stderr, "Error: %v\n", err)
	return exitFailure
}

// newRoot builds the command tree. With no command it runs `run`, so the
// DaemonSet's args and SDP_* variables of earlier releases keep working.
func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:   "simple-device-plugin",
		Short: "Serve many virtual Kubernetes extended resources from one manifest",
		Long: `simple-device-plugin serves the extended resources a manifest declares, one
kubelet device plugin per resource, from one process (a DaemonSet's pod).

With no command it runs 'run'. Every flag can also be set with an SDP_*
environment variable (--device-plugin-dir is SDP_DEVICE_PLUGIN_DIR); a flag
on the command line wins. A manifest of '-' is read from standard input.

Exit codes: 0 success; 1 failure (invalid manifest, request that cannot be
met, run stopped by an error); 2 usage error.`,
		Version:       versionInfo().text(),
		SilenceErrors: true,
		SilenceUsage:  true,

		SuggestionsMinimumDistance: 2,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if !readsEnv(cmd) {
				return nil
			}
			if err := applyEnv(cmd.Flags()); err != nil {
				return usageError{err}
			}
			return nil
		},
	}
	root.SetVersionTemplate("{{ .Version }}")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{flagHint(err)} })
	root.Flags().BoolP("version", "v", false, "print the version, commit, Go version and platform")
	runOpts := addRunFlags(root.Flags())
	root.RunE = func(cmd *cobra.Command, args []string) error { return runCommand(cmd, args, runOpts) }
	root.AddCommand(newRunCommand(), newValidateCommand(), newSimulateCommand(), newStatusCommand(), newSyncCommand(), newInstallCommand(), newVersionCommand(), newCleanupCommand())
	for _, c := range append(root.Commands(), root) {
		completeChoices(c)
	}
	return root
}

// unknownCommand is a usage error for a word that is not a command
// (cobra's message names the commands that look alike, and help checks
// its topic the same way); for a manifest file, it says which command
// serves it.
func unknownCommand(err error, args []string) error {
	msg := strings.TrimSpace(err.Error())
	for _, a := range args {
		if strings.HasPrefix(a, "-") || !strings.Contains(msg, fmt.Sprintf("%q", a)) {
			continue
		}
		if _, statErr := os.Stat(a); statErr == nil || slices.Contains([]string{".yaml", ".yml", ".json"}, filepath.Ext(a)) {
			msg += fmt.Sprintf("\nTo serve a manifest: simple-device-plugin run %s", a)
		}
		break
	}
	return usageError{errors.New(msg)}
}

// readsEnv says whether SDP_* variables set the command's flags: those of
// the commands that read a manifest or serve it, not of version,
// completion or help, whose flags mean something else.
func readsEnv(cmd *cobra.Command) bool {
	for c := cmd; c != nil; c = c.Parent() {
		switch c.Name() {
		case "version", "completion", "help", cobra.ShellCompRequestCmd, cobra.ShellCompNoDescRequestCmd:
			return false
		}
	}
	return true
}

// atMostOneManifest is the positional arguments of run and simulate.
func atMostOneManifest(cmd *cobra.Command, args []string) error {
	if len(args) > 1 {
		return usageErrorf("one manifest at a time, got %d arguments: %s", len(args), strings.Join(args, " "))
	}
	return nil
}

// flagHint adds to pflag's message when a long flag was written with one
// dash and is not one of ours.
func flagHint(err error) error {
	if msg := err.Error(); strings.HasPrefix(msg, "unknown shorthand flag") {
		if _, word, ok := strings.Cut(msg, " in -"); ok && len(word) > 1 {
			return fmt.Errorf("unknown flag: -%s (long flags take two dashes, as in --manifest)", word)
		}
	}
	return err
}

// twoDashes rewrites a long flag written with one dash (-manifest FILE, as
// Go's flag package and earlier releases accept) to two, so existing
// scripts and DaemonSets keep working. Only names of flags that exist are
// rewritten, and nothing after "--".
func twoDashes(root *cobra.Command, args []string) []string {
	long := map[string]bool{"help": true, "version": true}
	var collect func(c *cobra.Command)
	collect = func(c *cobra.Command) {
		c.Flags().VisitAll(func(f *pflag.Flag) { long[f.Name] = true })
		for _, sub := range c.Commands() {
			collect(sub)
		}
	}
	collect(root)
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = a
		if a == "--" {
			copy(out[i:], args[i:])
			break
		}
		if len(a) > 2 && a[0] == '-' && a[1] != '-' {
			name, _, _ := strings.Cut(a[1:], "=")
			if long[name] {
				out[i] = "-" + a
			}
		}
	}
	return out
}

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
