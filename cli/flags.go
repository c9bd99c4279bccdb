package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Flag values that check their range when set, so a bad value fails the
// same way from the command line and from an SDP_* variable, and the
// message says what would be accepted.

// choiceValue is a string flag with a fixed set of values.
type choiceValue struct {
	value   string
	choices []string
}

func newChoice(fs *pflag.FlagSet, name, shorthand, value, usage string, choices ...string) *string {
	v := &choiceValue{value: value, choices: choices}
	fs.VarP(v, name, shorthand, usage+" ("+strings.Join(choices, ", ")+")")
	return &v.value
}

func (v *choiceValue) String() string { return v.value }
func (v *choiceValue) Type() string   { return "string" }
func (v *choiceValue) Set(s string) error {
	for _, c := range v.choices {
		if s == c {
			v.value = s
			return nil
		}
	}
	return fmt.Errorf("must be one of %s", strings.Join(v.choices, ", "))
}

// durationValue is a duration flag bounded to [min, max].
type durationValue struct {
	value    time.Duration
	min, max time.Duration
}

func newDuration(fs *pflag.FlagSet, name string, value, min, max time.Duration, usage string) *time.Duration {
	v := &durationValue{value: value, min: min, max: max}
	fs.Var(v, name, fmt.Sprintf("%s, between %s and %s", usage, shortDuration(min), shortDuration(max)))
	return &v.value
}

func (v *durationValue) String() string { return shortDuration(v.value) }
func (v *durationValue) Type() string   { return "duration" }
func (v *durationValue) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("must be a duration such as 5s or 500ms, between %s and %s", shortDuration(v.min), shortDuration(v.max))
	}
	if d < v.min || d > v.max {
		return fmt.Errorf("must be between %s and %s", shortDuration(v.min), shortDuration(v.max))
	}
	v.value = d
	return nil
}

// shortDuration writes 1h and 5m rather than 1h0m0s and 5m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// intValue is an integer flag bounded to [min, max].
type intValue struct {
	value    int
	min, max int
}

func newInt(fs *pflag.FlagSet, name string, value, min, max int, usage string) *int {
	v := &intValue{value: value, min: min, max: max}
	fs.Var(v, name, fmt.Sprintf("%s, %d to %d", usage, min, max))
	return &v.value
}

func (v *intValue) String() string { return strconv.Itoa(v.value) }
func (v *intValue) Type() string   { return "int" }
func (v *intValue) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil || n < v.min || n > v.max {
		return fmt.Errorf("must be a whole number from %d to %d", v.min, v.max)
	}
	v.value = n
	return nil
}

// stringValue is a string flag whose help shows a placeholder (FILE, DIR)
// for its value: pflag takes it from Type, and completion shows the usage
// as written, so the placeholder cannot live in backquotes there.
type stringValue struct{ value, placeholder string }

func newString(fs *pflag.FlagSet, name, value, placeholder, usage string) *string {
	v := &stringValue{value: value, placeholder: placeholder}
	fs.Var(v, name, usage)
	return &v.value
}

func (v *stringValue) String() string     { return v.value }
func (v *stringValue) Type() string       { return v.placeholder }
func (v *stringValue) Set(s string) error { v.value = s; return nil }

// addressValue is a host:port to listen on, or empty for none.
type addressValue struct{ value string }

func (v *addressValue) String() string { return v.value }
func (v *addressValue) Type() string   { return "ADDR" }
func (v *addressValue) Set(s string) error {
	if s != "" {
		_, port, err := net.SplitHostPort(s)
		if n, convErr := strconv.Atoi(port); err != nil || convErr != nil || n < 0 || n > 65535 {
			return errors.New(`must be host:port or :port with a port from 0 to 65535, such as :8080 or 127.0.0.1:8080; "" turns the endpoints off`)
		}
	}
	v.value = s
	return nil
}

// envName is the SDP_* variable for a flag: --device-plugin-dir -> SDP_DEVICE_PLUGIN_DIR.
func envName(flagName string) string {
	return "SDP_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// envAnnotation names a flag's variable when envName's would say too
// little (sync's --to is SDP_SYNC_TO, not SDP_TO).
const envAnnotation = "sdp-env"

// flagEnvName is the variable that sets f.
func flagEnvName(f *pflag.Flag) string {
	if names := f.Annotations[envAnnotation]; len(names) > 0 {
		return names[0]
	}
	return envName(f.Name)
}

// applyEnv sets each flag that the command line left alone from its SDP_*
// variable, as DaemonSets configure things; the command line wins. A bad
// value is a usage error naming the variable.
func applyEnv(fs *pflag.FlagSet) error {
	var errs []error
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Changed || f.Name == "help" || f.Name == "version" {
			return
		}
		if v, ok := os.LookupEnv(flagEnvName(f)); ok {
			if err := f.Value.Set(v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q (for --%s): %w", flagEnvName(f), v, f.Name, err))
			}
		}
	})
	return errors.Join(errs...)
}

// stdinName is how a manifest read from standard input is named in messages.
const stdinName = "<stdin>"

// manifestArg returns the manifest a command is given: a positional FILE,
// or --manifest (which SDP_MANIFEST may set). "-" is standard input.
func manifestArg(cmd *cobra.Command, args []string, flagValue string) (string, error) {
	switch {
	case len(args) > 0 && cmd.Flags().Changed("manifest"):
		return "", usageErrorf("give the manifest once: %s FILE or --manifest FILE, not both", cmd.CommandPath())
	case len(args) > 0:
		return args[0], nil
	case flagValue != "":
		return flagValue, nil
	}
	return "", usageErrorf("no manifest: %s FILE (or --manifest FILE, or SDP_MANIFEST); - reads standard input", cmd.CommandPath())
}

// readManifest reads the manifest at path, or standard input for "-", and
// returns its text and the name messages use for it.
func readManifest(path string, stdin io.Reader) ([]byte, string, error) {
	if path == "-" {
		data, err := io.ReadAll(stdin)
		if err != nil {
			return nil, stdinName, fmt.Errorf("read the manifest from standard input: %w", err)
		}
		return data, stdinName, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, path, fmt.Errorf("read the manifest: %w", err)
	}
	return data, path, nil
}

// logFlags are the logging flags every long-running command has.
type logFlags struct {
	format, level *string
}

func addLogFlags(fs *pflag.FlagSet, level string) logFlags {
	return logFlags{
		format: newChoice(fs, "log-format", "", "text", "log format", "text", "json"),
		level:  newChoice(fs, "log-level", "", level, "log level; debug shows each step", "debug", "info", "warn", "error"),
	}
}

// logger builds the logger the flags ask for; the values were checked when set.
func (l logFlags) logger(w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(*l.level))
	opts := &slog.HandlerOptions{Level: lvl}
	if *l.format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// completeChoices offers a choice flag's values to shell completion.
func completeChoices(cmd *cobra.Command) {
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if v, ok := f.Value.(*choiceValue); ok {
			_ = cmd.RegisterFlagCompletionFunc(f.Name, cobra.FixedCompletions(v.choices, cobra.ShellCompDirectiveNoFileComp))
		}
	})
	if cmd.Flags().Lookup("manifest") != nil {
		_ = cmd.MarkFlagFilename("manifest", "yaml", "yml", "json")
	}
}

// stopOnSignals ends ctx on SIGTERM (a pod or service stopping) or SIGINT
// (Ctrl-C), so run and simulate shut down cleanly. A second signal, once
// stop has run, acts as if none were caught: it kills the process.
func stopOnSignals(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	context.AfterFunc(ctx, stop)
	return ctx, stop
}

// The node's CDI spec dirs, as containerd and CRI-O read them.
const defaultCDISpecDir = "/var/run/cdi"

var defaultCDIRegistry = []string{"/etc/cdi", "/var/run/cdi"}

// addCDIRegistryFlag is --cdi-registry-dirs: the dirs CDI names are
// resolved in; "" checks nothing.
func addCDIRegistryFlag(fs *pflag.FlagSet) *[]string {
	v := &dirsValue{dirs: slices.Clone(defaultCDIRegistry)}
	fs.Var(v, "cdi-registry-dirs", "the node's CDI spec dirs, comma-separated: a device whose CDI names resolve in none of them is Unhealthy; \"\" checks nothing")
	return &v.dirs
}

// dirsValue is a comma-separated list of directories; "" is none.
type dirsValue struct {
	dirs []string
	set  bool
}

func (v *dirsValue) String() string { return strings.Join(v.dirs, ",") }
func (v *dirsValue) Type() string   { return "DIRS" }
func (v *dirsValue) Set(s string) error {
	if !v.set {
		v.dirs, v.set = nil, true
	}
	for _, d := range strings.Split(s, ",") {
		if d = strings.TrimSpace(d); d != "" {
			v.dirs = append(v.dirs, d)
		}
	}
	return nil
}

// nodeNameDefault is the node name when no flag or SDP_NODE_NAME sets it:
// NODE_NAME, which a DaemonSet sets from the downward API.
func nodeNameDefault() string {
	return os.Getenv("NODE_NAME")
}

// addHostRootFlag is where discover: resources see the host's / (its /dev
// and /sys): "/" on a node, the host's mount in a container that has it
// elsewhere, a prepared tree to try a manifest.
func addHostRootFlag(fs *pflag.FlagSet) *string {
	return newString(fs, "host-root", "/", "DIR", "where discover: resources find the host's /dev and /sys")
}

// checkHostRoot refuses a --host-root that is not a directory: every
// discover: resource would find nothing, and say so only in its logs.
func checkHostRoot(dir string) error {
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return fmt.Errorf("--host-root %s is not a directory: mount the host's /dev and /sys under it, or leave it at /", dir)
	}
	return nil
}
