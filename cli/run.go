package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/sync/errgroup"

	"simple-device-plugin/host"
	"simple-device-plugin/manifest"
	"simple-device-plugin/podresources"
)

// runOptions are the flags of run (and of the root command, which runs it).
type runOptions struct {
	manifest, dir, nodeName, registryDir     *string
	listen                                   *addressValue
	registration                             *string
	poll                                     *time.Duration
	log                                      logFlags
	cdiSpecDir                               *string
	cdiRegistry                              *[]string
	podResources                             *string
	podResourcesPeriod                       *time.Duration
	allocatedSeriesMax                       *int
	hostRoot                                 *string
	waitForManifest                          *bool
	kubeconfig, draPluginDir, draRegistryDir *string
}

func addRunFlags(fs *pflag.FlagSet) *runOptions {
	o := &runOptions{
		manifest:     newString(fs, "manifest", "", "FILE", "the manifest, reloaded when it changes; - reads standard input"),
		dir:          newString(fs, "device-plugin-dir", "/var/lib/kubelet/device-plugins", "DIR", "the kubelet's device plugin dir"),
		nodeName:     newString(fs, "node-name", "", "NAME", "this node's name, for .Node and nodes: (default $NODE_NAME)"),
		registration: newChoice(fs, "registration", "", "auto", "how to register; auto: plugins-registry if its dir exists", "auto", "kubelet-socket", "plugins-registry"),
		registryDir:  newString(fs, "plugins-registry-dir", "", "DIR", "the kubelet's plugin watcher dir (default plugins_registry beside --device-plugin-dir)"),
		poll:         newDuration(fs, "poll", 5*time.Second, 100*time.Millisecond, time.Hour, "safety-net re-check behind file events"),
		listen:       &addressValue{":8080"},
		cdiSpecDir:   newString(fs, "cdi-spec-dir", defaultCDISpecDir, "DIR", "where the CDI specs of resources with cdi.spec go"),
		cdiRegistry:  addCDIRegistryFlag(fs),
		podResources: newString(fs, "pod-resources-socket", podresources.DefaultSocket, "SOCKET",
			"the kubelet's PodResources API, read to tell which pod holds each device; \"\" for none"),
		podResourcesPeriod: newDuration(fs, "pod-resources-period", podresources.DefaultPeriod, time.Second, time.Hour,
			"how often to re-read who holds what (an Allocate also triggers a read)"),
		hostRoot: addHostRootFlag(fs),
		allocatedSeriesMax: newInt(fs, "allocated-series-max", host.DefaultAllocatedSeriesMax, 0, 1<<20,
			"resources with more devices get no per-device sdp_device_allocated series (0: none)"),
	}
	o.kubeconfig = newString(fs, "kubeconfig", "", "FILE", "the API server for api: dra resources (default: the pod's service account)")
	o.draPluginDir = newString(fs, "dra-plugin-dir", "/var/lib/kubelet/plugins", "DIR", "where each DRA driver's socket and checkpoint go (DIR/<driver>/)")
	o.draRegistryDir = newString(fs, "dra-registry-dir", "/var/lib/kubelet/plugins_registry", "DIR", "the kubelet's plugin watcher dir, where DRA drivers register")
	o.waitForManifest = fs.Bool("wait-for-manifest", false,
		"a manifest file not there yet, or invalid, is waited for, serving nothing meanwhile, and a missing socket dir is made, rather than an error (node-service mode)")
	fs.Var(o.listen, "listen", "address of /healthz, /readyz, /metrics and /allocations; \"\" for none")
	o.log = addLogFlags(fs, "info")
	return o
}

func newRunCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "run [FILE]",
		Short: "Serve the manifest's resources to the kubelet (the default command)",
		Long: `run serves every resource of the manifest as a kubelet device plugin until
SIGTERM or SIGINT, and reloads the manifest when its file changes (or on
SIGHUP) without disturbing the resources that stay.`,
		Example: `  simple-device-plugin run --manifest /etc/simple-device-plugin/manifest.yaml
  SDP_MANIFEST=manifest.yaml simple-device-plugin run --log-level debug`,
		Args:              atMostOneManifest,
		ValidArgsFunction: manifestFiles,
	}
	opts := addRunFlags(cmd.Flags())
	cmd.RunE = func(cmd *cobra.Command, args []string) error { return runCommand(cmd, args, opts) }
	return cmd
}

// runCommand serves the manifest until SIGTERM/SIGINT (the command's context).
func runCommand(cmd *cobra.Command, args []string, o *runOptions) error {
	path, err := manifestArg(cmd, args, *o.manifest)
	if err != nil {
		return err
	}
	stderr := cmd.ErrOrStderr()
	log := o.log.logger(stderr)
	nodeName := *o.nodeName
	if nodeName == "" {
		nodeName = nodeNameDefault()
	}
	registryDir := *o.registryDir
	if registryDir == "" {
		registryDir = host.DefaultPluginsRegistryDir(*o.dir)
	}
	mode := host.Registration(*o.registration)
	if mode == "auto" {
		mode = host.AutoRegistration(registryDir)
	}

	data, name, err := readManifest(path, cmd.InOrStdin())
	var m *manifest.Manifest
	switch {
	case err != nil && *o.waitForManifest && path != "-" && errors.Is(err, fs.ErrNotExist):
		// At first boot the manifest may come later (synced from the
		// ConfigMap): serve nothing until the reloader finds it.
		log.Warn("the manifest is not there yet; serving nothing until it appears", "manifest", path)
		m = &manifest.Manifest{}
	case err != nil:
		return err
	default:
		if m, err = manifest.Parse(data, host.CheckDeviceList); err != nil {
			printManifestErrors(stderr, name, err)
			if !*o.waitForManifest || path == "-" {
				return errReported
			}
			// A node service must not exit over a file that the next
			// write fixes: serve nothing until a valid one is there.
			log.Warn("the manifest is invalid; serving nothing until a valid one is written", "manifest", path)
			m = &manifest.Manifest{}
		}
	}
	socketDir := *o.dir
	if mode == host.RegisterPluginsRegistry {
		socketDir = registryDir
	}
	if *o.waitForManifest {
		// A node service may start before the kubelet has ever run (a new
		// node), when the kubelet's dir is not there yet: make it, as the
		// kubelet would, rather than exit and hold the kubelet's start.
		if _, err := os.Stat(socketDir); errors.Is(err, fs.ErrNotExist) {
			if err := os.MkdirAll(socketDir, 0o750); err != nil {
				return fmt.Errorf("create the socket dir %s the kubelet has not made yet: %w", socketDir, err)
			}
			log.Info("created the socket dir: the kubelet has not run here yet", "dir", socketDir)
		}
	}
	if err := host.CheckDir(socketDir); err != nil {
		return err
	}
	if err := checkHostRoot(*o.hostRoot); err != nil {
		return err
	}

	metrics := host.NewMetrics()
	draServer, closeDRA, err := newDRAServer(o, nodeName, metrics, log)
	if err != nil {
		return err
	}
	defer closeDRA()
	h := host.New(host.Config{DevicePluginDir: *o.dir, PluginsRegistryDir: registryDir, Registration: mode, NodeName: nodeName, Logger: log, PollInterval: *o.poll,
		CDISpecDir: *o.cdiSpecDir, CDIRegistryDirs: *o.cdiRegistry,
		PodResourcesSocket: *o.podResources, PodResourcesPeriod: *o.podResourcesPeriod, AllocatedSeriesMax: seriesMax(*o.allocatedSeriesMax),
		HostRoot: *o.hostRoot, Metrics: metrics, DRA: draServer})
	log.Info("starting", "version", versionInfo().Version, "manifest", name, "hash", m.Hash, "resources", len(m.Resources),
		"devices", m.TotalDevices(), "registration", string(mode), "socket_dir", socketDir, "node", nodeName)
	if path == "-" {
		path = "" // nothing to watch
	}
	ctx, stop := stopOnSignals(cmd.Context())
	defer stop()
	if err := serve(ctx, h, m, path, data, o.listen.value, log); err != nil {
		log.Error("stopped with an error", "err", err)
		return errReported
	}
	log.Info("shut down cleanly")
	return nil
}

// manifestFiles offers manifest files to shell completion.
func manifestFiles(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return []string{"yaml", "yml", "json"}, cobra.ShellCompDirectiveFilterFileExt
}

// serve runs the host, the manifest reloader, SIGHUP handling and the HTTP
// endpoints until ctx ends or one of them fails.
func serve(ctx context.Context, h *host.Host, m *manifest.Manifest, path string, data []byte, listen string, log *slog.Logger) error {
	// Listen first: a port in use is a deployment mistake to report before
	// any plugin has created a socket or registered with the kubelet.
	lis, err := listenHTTP(listen)
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return h.Run(gctx, m) })
	g.Go(func() error { return notifyServing(gctx, h, log) })

	// A manifest from standard input (path "") cannot change: no reloader.
	var reloader *host.Reloader
	if path != "" {
		reloader = host.NewReloader(path, h, data)
		g.Go(func() error { return reloader.Run(gctx) })
	}

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	g.Go(func() error {
		defer signal.Stop(hup)
		for {
			select {
			case <-gctx.Done():
				return nil
			case <-hup:
				if reloader == nil {
					log.Warn("SIGHUP: the manifest came from standard input; nothing to reload")
					continue
				}
				log.Info("SIGHUP: reloading the manifest")
				reloader.Trigger()
			}
		}
	})

	if lis != nil {
		log.Info("serving /healthz, /readyz, /metrics", "addr", lis.Addr().String())
		serveHTTP(gctx, g, lis, h.Handler())
	}
	return g.Wait()
}

// serveHTTP serves handler on lis in g until ctx ends, then shuts the
// server down within a second.
// listenHTTP listens on addr for the HTTP endpoints; nil for "".
func listenHTTP(addr string) (net.Listener, error) {
	if addr == "" {
		return nil, nil
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s for /healthz, /readyz, /metrics: %w", addr, err)
	}
	return lis, nil
}

func serveHTTP(ctx context.Context, g *errgroup.Group, lis net.Listener, handler http.Handler) {
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second}
	g.Go(func() error {
		if err := srv.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("http: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-ctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		return srv.Shutdown(shutdownCtx)
	})
}

// seriesMax maps the flag's 0 (no per-device series) to the host's "none".
func seriesMax(flag int) int {
	if flag == 0 {
		return -1
	}
	return flag
}

// notifyServing tells a service manager (systemd, Type=notify) once every
// plugin listens, so a kubelet ordered after this service finds them all
// there, and that the service is stopping when ctx ends.
func notifyServing(ctx context.Context, h *host.Host, log *slog.Logger) error {
	if os.Getenv("NOTIFY_SOCKET") == "" {
		return nil
	}
	if err := h.Serving(ctx); err != nil {
		return nil // stopped before serving: nothing to announce
	}
	status := fmt.Sprintf("serving %d resources", len(h.Manifest().Resources))
	if len(h.Manifest().Resources) == 0 {
		status = "waiting for the manifest"
	}
	// A service manager that cannot be told is worth a log line, not a
	// stop: the plugins serve the kubelet either way.
	if err := notify("READY=1\nSTATUS=" + status); err != nil {
		log.Warn("cannot tell the service manager that the plugins serve", "err", err)
	} else {
		log.Info("told the service manager that the plugins serve", "status", status)
	}
	<-ctx.Done()
	if err := notify("STOPPING=1"); err != nil {
		log.Warn("cannot tell the service manager that the host stops", "err", err)
	}
	return nil
}
