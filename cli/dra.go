package cli

import (
	"errors"
	"fmt"
	"log/slog"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"simple-device-plugin/cdi"
	"simple-device-plugin/dra"
	"simple-device-plugin/host"
)

// newDRAServer builds the DRA side of run: it dials the API server only
// once the manifest has an api: dra resource. Without a CDI spec dir such
// resources are refused, as cdi.spec ones are by the host.
func newDRAServer(o *runOptions, node string, metrics *host.Metrics, log *slog.Logger) (*dra.Manager, func(), error) {
	var specDir *cdi.Dir
	if *o.cdiSpecDir != "" {
		var err error
		if specDir, err = cdi.OpenDir(*o.cdiSpecDir); err != nil {
			return nil, nil, err
		}
	}
	cfg := dra.Config{
		PluginDir: *o.draPluginDir, RegistryDir: *o.draRegistryDir, Node: node, CDI: specDir,
		Client: func() (kubernetes.Interface, error) { return kubeClient(*o.kubeconfig) },
		Logger: log, Registerer: metrics.Registry,
	}
	resolves, closeRegistry, err := cdi.OpenResolver(*o.cdiRegistry)
	if err != nil {
		return nil, nil, err
	}
	cfg.Resolves = resolves
	closeFn := func() {
		if err := closeRegistry(); err != nil {
			log.Warn("closing the CDI registry", "err", err)
		}
	}
	return dra.New(cfg), closeFn, nil
}

// kubeClient dials the API server of kubeconfig, or the pod's own.
func kubeClient(kubeconfig string) (kubernetes.Interface, error) {
	var cfg *rest.Config
	var err error
	if kubeconfig != "" {
		cfg, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
	} else {
		cfg, err = rest.InClusterConfig()
		if errors.Is(err, rest.ErrNotInCluster) {
			return nil, errors.New("no API server for api: dra resources: set --kubeconfig, or run in a pod with its service-account token mounted")
		}
	}
	if err != nil {
		return nil, fmt.Errorf("API server config: %w", err)
	}
	cfg.UserAgent = "simple-device-plugin"
	// client-go's default (5 requests/s, bursts of 10) would pace
	// NodePrepareResources, which reads each claim, to 5 claims a second
	// once a node admits more than 10 pods at once.
	cfg.QPS, cfg.Burst = 50, 100
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("API client: %w", err)
	}
	return c, nil
}
