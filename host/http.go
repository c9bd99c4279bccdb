package host

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Handler serves /healthz (the process is alive), /readyz (every resource
// of the current manifest is registered with the kubelet right now) and
// /metrics (Prometheus).
func (h *Host) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
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
