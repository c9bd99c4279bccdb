package cli

import (
	"context"
	"fmt"
	"io"
	"os"

	"simple-device-plugin/host"
	"simple-device-plugin/manifest"
	"simple-device-plugin/simulate"
)

// simulateCommand runs the real host against a simulated kubelet and prints
// what a pod's containers would get. Exit 0 when every container got its
// devices (clashes are warnings), 1 when the manifest is invalid or the
// request cannot be met, 2 on usage errors (including a malformed --request).
func simulateCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("simulate", stderr)
	manifestPath := fs.String("manifest", "", "manifest file (required)")
	request := fs.String("request", "", "devices per container, e.g. example.com/fpga=2,example.com/license-seat=1; default one of each resource")
	containers := fs.Int("containers", 1, "number of containers, each asking for --request")
	nodeName := fs.String("node-name", nodeNameDefault(), "node name for templates and nodes: globs")
	output := fs.String("output", "text", "output format: text, yaml or json")
	logFormat := fs.String("log-format", "text", "log format of the host's logs (shown with --log-level)")
	logLevel := fs.String("log-level", "error", "host log level: debug, info, warn, error")
	if err := parseWithEnv(fs, args, os.LookupEnv); err != nil {
		return parseFailure(err)
	}
	switch {
	case fs.NArg() > 0:
		fmt.Fprintf(stderr, "simulate: unexpected arguments %q\n", fs.Args())
		return exitUsage
	case *manifestPath == "":
		fmt.Fprintln(stderr, "simulate: --manifest is required, e.g. --manifest examples/manifest.yaml")
		return exitUsage
	case *containers < 1:
		fmt.Fprintln(stderr, "simulate: --containers must be at least 1")
		return exitUsage
	case *output != "text" && *output != "yaml" && *output != "json":
		fmt.Fprintf(stderr, "simulate: --output %q: use text, yaml or json\n", *output)
		return exitUsage
	}
	log, err := newLogger(stderr, *logFormat, *logLevel)
	if err != nil {
		fmt.Fprintf(stderr, "simulate: %v\n", err)
		return exitUsage
	}
	m, err := manifest.Load(*manifestPath, host.CheckDeviceList)
	if err != nil {
		if manifest.Errors(err) != nil {
			printManifestErrors(stderr, *manifestPath, err)
		} else {
			fmt.Fprintf(stderr, "simulate: %v\n", err)
		}
		return exitFailure
	}
	opts := simulate.Options{Manifest: m, Containers: *containers, NodeName: *nodeName, Logger: log}
	if *request != "" {
		if opts.Request, err = simulate.ParseRequest(*request); err != nil {
			fmt.Fprintf(stderr, "simulate: %v\n", err)
			return exitUsage
		}
	}
	report, err := simulate.Run(ctx, opts)
	if err != nil {
		fmt.Fprintf(stderr, "simulate: %v\n", err)
		return exitFailure
	}
	if err := report.Write(stdout, *output); err != nil {
		fmt.Fprintf(stderr, "simulate: %v\n", err)
		return exitFailure
	}
	if *output != "text" {
		// The text report shows them; a script reading yaml or json may not look.
		for _, w := range report.Warnings() {
			fmt.Fprintf(stderr, "simulate: warning: %s\n", w)
		}
	}
	return exitOK
}
