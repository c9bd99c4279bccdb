package cli

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"simple-device-plugin/host"
	"simple-device-plugin/manifest"
	"simple-device-plugin/nodesync"
)

// Where the sync pod finds the host's manifest dir and the node's binary:
// the host's /etc/simple-device-plugin and /usr/local/bin mounted under /host.
const (
	defaultSyncTarget    = "/host/etc/simple-device-plugin/manifest.yaml"
	defaultSyncValidator = "/host/usr/local/bin/simple-device-plugin"
)

func newSyncCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sync --from FILE --to HOSTFILE [--once]",
		Short: "Keep the node service's manifest file equal to the ConfigMap's (valid only)",
		Long: `sync keeps the host's manifest file (--to), which the node service reads,
equal to the manifest FILE (the ConfigMap's, mounted in the sync pod): at
start, on every ConfigMap update, when someone else changes or removes the
host file, and every --poll. The file is replaced atomically, and only when
the node's own binary (--validate-with) accepts the manifest: '<binary>
validate -' must exit 0, so a newer sync image never writes fields an older
node binary refuses. An invalid manifest writes nothing and is logged once,
one line per problem; a missing validator writes nothing until it appears.
--validate-with "" checks with this binary instead: right only when the sync
image and the node binary are the same version.

/readyz is 200 only while the host file equals the last valid manifest.
--once checks and writes once and exits (0: the host file holds the
manifest), for a node image or cloud-init step before the service starts.`,
		Example: `  simple-device-plugin sync --from /etc/simple-device-plugin-config/manifest.yaml \
    --to /host/etc/simple-device-plugin/manifest.yaml \
    --validate-with /host/usr/local/bin/simple-device-plugin`,
		Args:              atMostOneManifest,
		ValidArgsFunction: manifestFiles,
	}
	fs := cmd.Flags()
	source := newString(fs, "manifest", "", "FILE", "the manifest to copy (the ConfigMap's file)")
	from := newString(fs, "from", "", "FILE", "the manifest to copy (the ConfigMap's file); the same as FILE or --manifest")
	once := fs.Bool("once", false, "check and write once, then exit: 0 when the host file holds the manifest, 1 when not (invalid, no validator, write failed)")
	target := newString(fs, "to", defaultSyncTarget, "HOSTFILE", "the host's manifest file, read by the node service; its dir must exist (env SDP_SYNC_TO)")
	_ = fs.SetAnnotation("to", envAnnotation, []string{"SDP_SYNC_TO"})
	validator := newString(fs, "validate-with", defaultSyncValidator, "BINARY",
		`the node's simple-device-plugin, run as 'BINARY validate -' before each write; "" checks with this binary (same version only)`)
	poll := newDuration(fs, "poll", 10*time.Second, 100*time.Millisecond, time.Hour, "safety-net re-check behind file events")
	listen := &addressValue{":8081"}
	fs.Var(listen, "listen", "address of /healthz, /readyz and /metrics; \"\" for none")
	logOpts := addLogFlags(fs, "info")

	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if *from != "" {
			if (*source != "" && *source != *from) || (len(args) > 0 && args[0] != *from) {
				return usageErrorf("--from %s and another manifest: give the manifest once", *from)
			}
			*source, args = *from, nil
		}
		if len(args) == 0 && *source == "" {
			return usageErrorf("no manifest: %s --from FILE (or FILE, --manifest FILE, SDP_MANIFEST): the ConfigMap's file", cmd.CommandPath())
		}
		path, err := manifestArg(cmd, args, *source)
		if err != nil {
			return err
		}
		if path == "-" {
			return usageErrorf("sync watches its manifest for changes, so it cannot read standard input: give the ConfigMap's file, as in %s /etc/simple-device-plugin-config/manifest.yaml", cmd.CommandPath())
		}
		if err := checkSyncPaths(path, *target); err != nil {
			return err
		}
		log := logOpts.logger(cmd.ErrOrStderr())
		s := &nodesync.Syncer{Source: path, Target: *target, Poll: *poll, Logger: log}
		if *validator == "" {
			log.Warn("validating with this binary's own schema: right only when the sync image and the node binary are the same version")
			s.Validate = validateInProcess(path)
		} else {
			s.Validate = nodesync.ExecValidator(*validator)
		}
		log.Info("starting sync", "version", versionInfo().Version, "source", path, "target", *target, "validate_with", *validator)
		ctx, stop := stopOnSignals(cmd.Context())
		defer stop()
		if *once {
			if err := s.Once(ctx); err != nil {
				log.Error("the host file does not hold the manifest", "reason", err.Error())
				return errReported
			}
			return nil
		}
		if err := serveSync(ctx, s, listen.value, log); err != nil {
			log.Error("stopped with an error", "err", err)
			return errReported
		}
		log.Info("shut down cleanly")
		return nil
	}
	return cmd
}

// checkSyncPaths refuses a target whose dir is missing (the host's dir is
// not mounted: every write would fail) and a target that is the source.
func checkSyncPaths(source, target string) error {
	if target == "" {
		return usageErrorf("--to is empty: give the host's manifest file, such as %s", defaultSyncTarget)
	}
	if filepath.Clean(source) == filepath.Clean(target) {
		return usageErrorf("--to %s is the manifest itself: give the host's manifest file", target)
	}
	dir := filepath.Dir(target)
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return fmt.Errorf("--to %s: its dir %s is not a directory (mount the host's /etc/simple-device-plugin there, or set --to to where it is mounted)", target, dir)
	}
	return nil
}

// validateInProcess checks a manifest as validate does, with this
// binary's schema; the problems read as validate prints them.
func validateInProcess(name string) func(context.Context, []byte) error {
	return func(_ context.Context, data []byte) error {
		_, err := manifest.Parse(data, host.CheckDeviceList)
		if err == nil {
			return nil
		}
		var b strings.Builder
		writeProblems(&b, name, err)
		return &nodesync.InvalidError{Problems: strings.Split(strings.TrimRight(b.String(), "\n"), "\n")}
	}
}

// serveSync runs the syncer and its HTTP endpoints until ctx ends or one
// of them fails.
func serveSync(ctx context.Context, s *nodesync.Syncer, listen string, log *slog.Logger) error {
	// Listen first: a port in use is a deployment mistake to report before
	// anything is written.
	lis, err := listenHTTP(listen)
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.Run(gctx) })
	if lis != nil {
		log.Info("serving /healthz, /readyz, /metrics", "addr", lis.Addr().String())
		serveHTTP(gctx, g, lis, s.Handler())
	}
	return g.Wait()
}
