package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"simple-device-plugin/host"
	"simple-device-plugin/manifest"
)

// runCommand serves the manifest until SIGTERM/SIGINT (ctx).
func runCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("run", stderr)
	manifestPath := fs.String("manifest", "", "manifest file (required)")
	dir := fs.String("device-plugin-dir", "/var/lib/kubelet/device-plugins", "the kubelet's device plugin directory")
	listen := fs.String("listen", ":8080", "address for /healthz, /readyz and /metrics; empty disables")
	logFormat := fs.String("log-format", "text", "log format: text or json")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	nodeName := fs.String("node-name", nodeNameDefault(), "node name for templates (.Node) and nodes: globs; default $NODE_NAME")
	registration := fs.String("registration", "auto", "how to register: auto (plugins-registry if its dir exists), kubelet-socket or plugins-registry")
	registryDir := fs.String("plugins-registry-dir", "", "the kubelet's plugin watcher dir (default: plugins_registry next to --device-plugin-dir)")
	poll := fs.Duration("poll", 5*time.Second, "safety-net poll interval behind fsnotify")
	if err := parseWithEnv(fs, args, os.LookupEnv); err != nil {
		return parseFailure(err)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "run: unexpected arguments %q\n", fs.Args())
		return exitUsage
	}
	if *manifestPath == "" {
		fmt.Fprintln(stderr, "run: --manifest (or SDP_MANIFEST) is required")
		return exitUsage
	}
	log, err := newLogger(stderr, *logFormat, *logLevel)
	if err != nil {
		fmt.Fprintf(stderr, "run: %v\n", err)
		return exitUsage
	}
	if *registryDir == "" {
		*registryDir = host.DefaultPluginsRegistryDir(*dir)
	}
	mode := host.Registration(*registration)
	switch mode {
	case "auto":
		mode = host.AutoRegistration(*registryDir)
	case host.RegisterKubeletSocket, host.RegisterPluginsRegistry:
	default:
		fmt.Fprintf(stderr, "run: --registration %q: use auto, kubelet-socket or plugins-registry\n", *registration)
		return exitUsage
	}

	data, err := os.ReadFile(*manifestPath)
	if err != nil {
		fmt.Fprintf(stderr, "run: %v\n", err)
		return exitFailure
	}
	m, err := manifest.Parse(data, host.CheckDeviceList)
	if err != nil {
		printManifestErrors(stderr, *manifestPath, err)
		return exitFailure
	}
	socketDir := *dir
	if mode == host.RegisterPluginsRegistry {
		socketDir = *registryDir
	}
	if err := host.CheckDir(socketDir); err != nil {
		fmt.Fprintf(stderr, "run: %v\n", err)
		return exitFailure
	}

	h := host.New(host.Config{DevicePluginDir: *dir, PluginsRegistryDir: *registryDir, Registration: mode, NodeName: *nodeName, Logger: log, PollInterval: *poll})
	log.Info("starting", "version", version, "manifest", *manifestPath, "hash", m.Hash, "resources", len(m.Resources),
		"devices", m.TotalDevices(), "registration", string(mode), "socket_dir", socketDir, "node", *nodeName)
	if err := serve(ctx, h, m, *manifestPath, data, *listen, log); err != nil {
		log.Error("stopped with an error", "err", err)
		return exitFailure
	}
	log.Info("shut down cleanly")
	return exitOK
}

// serve runs the host, the manifest reloader, SIGHUP handling and the HTTP
// endpoints until ctx ends or one of them fails.
func serve(ctx context.Context, h *host.Host, m *manifest.Manifest, path string, data []byte, listen string, log *slog.Logger) error {
	// Listen first: a port in use is a deployment mistake to report before
	// any plugin has created a socket or registered with the kubelet.
	var lis net.Listener
	if listen != "" {
		var err error
		if lis, err = net.Listen("tcp", listen); err != nil {
			return fmt.Errorf("listen on %s for /healthz, /readyz, /metrics: %w", listen, err)
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return h.Run(gctx, m) })

	reloader := host.NewReloader(path, h, data)
	g.Go(func() error { return reloader.Run(gctx) })

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	g.Go(func() error {
		defer signal.Stop(hup)
		for {
			select {
			case <-gctx.Done():
				return nil
			case <-hup:
				log.Info("SIGHUP: reloading the manifest")
				reloader.Trigger()
			}
		}
	})

	if lis != nil {
		srv := &http.Server{Handler: h.Handler(), ReadHeaderTimeout: 5 * time.Second}
		log.Info("serving /healthz, /readyz, /metrics", "addr", lis.Addr().String())
		g.Go(func() error {
			if err := srv.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("http: %w", err)
			}
			return nil
		})
		g.Go(func() error {
			<-gctx.Done()
			shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(gctx), time.Second)
			defer cancel()
			return srv.Shutdown(shutdownCtx)
		})
	}
	return g.Wait()
}
