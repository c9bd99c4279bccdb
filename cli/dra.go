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

// newDRAServer builds the DRA side of run: idle until the manifest has an
// api: dra resource, when it first dials the API server.
func newDRAServer(o *runOptions, node string, metrics *host.Metrics, log *slog.Logger) (*dra.Manager, func(), error) {
	specDir, err := cdi.OpenDir(*o.cdiSpecDir)
	if err != nil {
		return nil, nil, err
	}
	cfg := dra.Config{
		PluginDir: *o.draPluginDir, RegistryDir: *o.draRegistryDir, Node: node, CDI: specDir,
		Client: func() (kubernetes.Interface, error) { return kubeClient(*o.kubeconfig) },
		Logger: log, Registerer: metrics.Registry,
	}
	closeFn := func() {}
	if dirs := *o.cdiRegistry; len(dirs) > 0 {
		reg, err := cdi.OpenRegistry(dirs)
		if err != nil {
			return nil, nil, err
		}
		cfg.Resolves = reg.Resolves
		closeFn = func() {
			if err := reg.Close(); err != nil {
				log.Warn("closing the CDI registry", "err", err)
			}
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
