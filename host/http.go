package host

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Handler serves /healthz (the process is alive), /readyz (a manifest is
// loaded, every resource of it is registered with the kubelet right now,
// and none is left out for want of a node name), /metrics (Prometheus) and
// /allocations (JSON: which pod holds each device).
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
		if m := h.Manifest(); m != nil && len(m.Resources) == 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, "no manifest yet: waiting for its file to appear")
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
	mux.HandleFunc("/allocations", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(h.Allocations()) // a client gone away is not our error
	})
	mux.Handle("/metrics", promhttp.HandlerFor(h.metrics.Registry, promhttp.HandlerOpts{}))
	return mux
}
