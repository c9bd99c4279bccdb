// Command simple-device-plugin serves many virtual Kubernetes extended
// resources from one process, one kubelet device plugin per resource,
// declared in a YAML manifest. See README.md; the commands live in cli/.
package main

import (
	"context"
	"os"

	"simple-device-plugin/cli"
)

func main() {
	// run and simulate catch SIGTERM and SIGINT to stop cleanly (cli
	// does it); every other command ends at once, as commands do.
	code := cli.Main(context.Background(), os.Args[1:], os.Stdout, os.Stderr)
	cli.FlushProfiles()
	os.Exit(code)
}
