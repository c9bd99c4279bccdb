package host

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Handler serves /healthz (the process is alive), /readyz (every resource
// of the current manifest is registered with the kubelet right now, and
// none is left out for want of a node name) and /metrics (Prometheus).
func (h *Host) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if missing := h.NoNodeName(); len(missing) > 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "no node name, so resources with nodes: are not served (%s); set --node-name or NODE_NAME\n", strings.Join(missing, ", "))
			return
		}
		ready, waiting := h.Ready()
		if !ready {
			w.WriteHeader(http.StatusServiceUnavailable)
			if waiting == nil {
				fmt.Fprintln(w, "not running")
				return
			}
			fmt.Fprintf(w, "not registered: %s\n", strings.Join(waiting, ", "))
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.Handle("/metrics", promhttp.HandlerFor(h.metrics.Registry, promhttp.HandlerOpts{}))
	return mux
}
