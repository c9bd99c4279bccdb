package cli

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"simple-device-plugin/nodeservice"
)

// newInstallCommand installs the node service: the binary as a systemd
// service of the node, ordered before the kubelet, so that its plugins are
// registered when the kubelet re-admits pods after a reboot.
func newInstallCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "install",
		Short: "Install this binary as a systemd service of the node, started before the kubelet",
		Long: `install makes the node run simple-device-plugin as a systemd service ordered
before the kubelet (node-service mode, docs/node-service.md): it copies its
own binary to --bin-dir, writes the unit ` + nodeservice.UnitName + ` to
--unit-dir and the env file (NODE_NAME) to --config-dir, and enables the
unit as systemctl enable does (wanted by kubelet.service and
multi-user.target). Every path is on the host, under --host-root.

With --start auto, when the host runs systemd (--host-root/run/systemd/system
exists), the host's systemctl (in a chroot of --host-root) reloads systemd
and restarts the service if the binary, the unit or the env file changed,
or starts it otherwise. Without systemd running it says so: the service
starts at the next boot.

Files are written atomically and only when they differ: a second run
changes nothing. The service serves ` + nodeservice.DefaultConfigDir + `/` + nodeservice.ManifestFile + `
(under --config-dir), which the sync command keeps equal to the cluster's
ConfigMap. --remove stops, disables and removes the service and its binary,
leaving --config-dir.`,
		Example: `  # on the node itself (cloud-init, by hand)
  simple-device-plugin install --node-name "$(hostname)"
  # from a privileged pod with the host's / at /host and NODE_NAME set
  simple-device-plugin install --host-root /host
  # take it off the node again
  simple-device-plugin install --remove --host-root /host`,
		Args: noArgs,
	}
	fs := cmd.Flags()
	hostRoot := newString(fs, "host-root", "/", "DIR", "where the host's / is: / on the node, its mount in a pod")
	binDir := newString(fs, "bin-dir", nodeservice.DefaultBinDir, "DIR", "the host dir the binary goes to")
	unitDir := newString(fs, "unit-dir", nodeservice.DefaultUnitDir, "DIR", "the host dir the systemd unit goes to")
	configDir := newString(fs, "config-dir", nodeservice.DefaultConfigDir, "DIR", "the host dir of the service's manifest and env file")
	nodeName := newString(fs, "node-name", "", "NAME", "this node's name, written to the env file as NODE_NAME (default $NODE_NAME)")
	port := newInt(fs, "port", nodeservice.DefaultPort, 1, 65535, "the host port of the service's /healthz, /readyz and /metrics")
	address := newString(fs, "address", "", "IP", "the host address of /healthz, /readyz and /metrics; \"\" for every interface")
	start := newChoice(fs, "start", "", string(nodeservice.StartAuto), "auto: (re)start the service when the host runs systemd; never: leave it to the next boot", string(nodeservice.StartAuto), string(nodeservice.StartNever))
	remove := fs.Bool("remove", false, "stop, disable and remove the service and its binary instead (the config dir stays)")

	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		c := nodeservice.Config{
			HostRoot: *hostRoot, BinDir: *binDir, UnitDir: *unitDir, ConfigDir: *configDir,
			Port: *port, Address: *address, NodeName: *nodeName, Start: nodeservice.Start(*start), Out: cmd.OutOrStdout(),
		}
		if *remove {
			return nodeservice.Remove(cmd.Context(), c)
		}
		if c.NodeName == "" {
			c.NodeName = nodeNameDefault()
		}
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("find the installer's own binary to install: %w", err)
		}
		c.Executable = exe
		_, err = nodeservice.Install(cmd.Context(), c)
		return err
	}
	return cmd
}
