package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"simple-device-plugin/host"
)

const statusTimeout = 10 * time.Second

func newStatusCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show which pod holds each device, asking a running host",
		Long: `status asks a running host (its --listen address) which container holds each
device of its resources, as the kubelet's PodResources API told it, and
prints one line per device and holder. HEALTH is Removed for a device a
pod still holds that the manifest no longer has.`,
		Example: `  simple-device-plugin status
  kubectl -n simple-device-plugin exec ds/simple-device-plugin -- simple-device-plugin status -o json`,
		Args: noArgs,
	}
	fs := cmd.Flags()
	listen := &addressValue{":8080"}
	fs.Var(listen, "listen", "the host's --listen address")
	output := newChoice(fs, "output", "o", "table", "output format", "table", "json", "yaml")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if listen.value == "" {
			return usageErrorf("--listen is empty: give the address the host serves /allocations on")
		}
		a, err := fetchAllocations(cmd.Context(), listen.value)
		if err != nil {
			return err
		}
		out := cmd.OutOrStdout()
		if *output != "table" {
			return writeAs(out, *output, a)
		}
		if a.State != "ok" {
			fmt.Fprintf(cmd.ErrOrStderr(), "holders unknown or stale (%s): %s\n", a.State, a.Reason)
		}
		return writeStatusTable(out, a)
	}
	return cmd
}

// fetchAllocations reads /allocations from the host at addr; an
// unspecified host part (":8080") means this machine.
func fetchAllocations(ctx context.Context, addr string) (host.Allocations, error) {
	var a host.Allocations
	h, port, err := net.SplitHostPort(addr)
	if err != nil {
		return a, usageErrorf("--listen %q: %v", addr, err)
	}
	if ip := net.ParseIP(h); h == "" || (ip != nil && ip.IsUnspecified()) {
		h = "127.0.0.1"
	}
	url := "http://" + net.JoinHostPort(h, port) + "/allocations"
	ctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return a, fmt.Errorf("status: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return a, fmt.Errorf("no host answers at %s (is it running, with this --listen?): %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return a, fmt.Errorf("%s answered %s (is the host older than the status command?)", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		return a, fmt.Errorf("%s: %w", url, err)
	}
	return a, nil
}

// writeStatusTable prints one row per device and holder; "-" for a free device.
func writeStatusTable(w io.Writer, a host.Allocations) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "RESOURCE\tDEVICE\tHEALTH\tPOD\tCONTAINER")
	for _, r := range a.Resources {
		for _, d := range r.Devices {
			if len(d.Holders) == 0 {
				fmt.Fprintf(tw, "%s\t%s\t%s\t-\t-\n", r.Resource, d.ID, d.Health)
			}
			for _, who := range d.Holders {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s/%s\t%s\n", r.Resource, d.ID, d.Health, who.Namespace, who.Pod, who.Container)
			}
		}
	}
	return tw.Flush()
}

// writeAs prints v as indented JSON or as YAML.
func writeAs(w io.Writer, format string, v any) error {
	if format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	b, err := yaml.Marshal(v)
	if err != nil {
		return fmt.Errorf("as YAML: %w", err)
	}
	_, err = w.Write(b)
	return err
}
