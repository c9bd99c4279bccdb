// Command simple-device-plugin serves many virtual Kubernetes extended
// resources from one process, one kubelet device plugin per resource,
// declared in a YAML manifest. See README.md; the commands live in cli/.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"simple-device-plugin/cli"
)

func main() {
	// Stopping the pod or the service sends SIGTERM; the run command then
	// shuts down cleanly instead of being killed.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	code := cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	cli.FlushProfiles()
	os.Exit(code)
}
