package cli

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"simple-device-plugin/host"
	"simple-device-plugin/manifest"
	"simple-device-plugin/simulate"
)

func newSimulateCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "simulate [FILE]",
		Short: "Try a manifest without a cluster: what a pod's containers would get",
		Long: `simulate runs the real device plugins of the manifest against a stand-in
kubelet in a temporary directory, asks for the request in every container
as the kubelet would (register, list, allocate) and prints what each
container would get: env vars, annotations, mounts, device nodes and CDI
devices. Exit 0 when every container got its devices (clashes between
resources are warnings), 1 when the manifest is invalid or the request
cannot be met.`,
		Example: `  simple-device-plugin simulate examples/manifest.yaml
  simple-device-plugin simulate examples/manifest.yaml --request example.com/fpga=2 --containers 2 -o yaml`,
		Args:              atMostOneManifest,
		ValidArgsFunction: manifestFiles,
	}
	fs := cmd.Flags()
	manifestFlag := newString(fs, "manifest", "", "FILE", "the manifest; - reads standard input")
	request := newString(fs, "request", "", "NAME=N,...", "devices per container (default one of each resource)")
	containers := newInt(fs, "containers", 1, 1, 1000, "containers, each asking for --request")
	nodeName := newString(fs, "node-name", "", "NAME", "the node to simulate, for .Node and nodes: (default $NODE_NAME)")
	output := newChoice(fs, "output", "o", "text", "output format", "text", "yaml", "json")
	logs := addLogFlags(fs, "error")
	cdiRegistry := addCDIRegistryFlag(fs)
	hostRoot := addHostRootFlag(fs)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		path, err := manifestArg(cmd, args, *manifestFlag)
		if err != nil {
			return err
		}
		if err := checkHostRoot(*hostRoot); err != nil {
			return err
		}
		opts := simulate.Options{Containers: *containers, NodeName: *nodeName, Logger: logs.logger(cmd.ErrOrStderr()), CDIRegistryDirs: *cdiRegistry, HostRoot: *hostRoot}
		if opts.NodeName == "" {
			opts.NodeName = nodeNameDefault()
		}
		if *request != "" {
			if opts.Request, err = simulate.ParseRequest(*request); err != nil {
				return usageError{fmt.Errorf("--request: %w", err)}
			}
		}
		data, name, err := readManifest(path, cmd.InOrStdin())
		if err != nil {
			return err
		}
		if opts.Manifest, err = manifest.Parse(data, host.CheckDeviceList); err != nil {
			printManifestErrors(cmd.ErrOrStderr(), name, err)
			return errReported
		}
		ctx, stop := stopOnSignals(cmd.Context())
		defer stop()
		report, err := simulate.Run(ctx, opts)
		if err != nil {
			if ctx.Err() != nil {
				return errors.New("interrupted")
			}
			return err
		}
		if err := report.Write(cmd.OutOrStdout(), *output); err != nil {
			return err
		}
		if *output != "text" {
			// The text report shows them; a script reading yaml or json may not look.
			for _, w := range report.Warnings() {
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s\n", w)
			}
		}
		return nil
	}
	return cmd
}
