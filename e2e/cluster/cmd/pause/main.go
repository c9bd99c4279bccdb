// Command pause is the pod sandbox's process in the cluster test, in place
// of registry.k8s.io/pause (no registry is reachable there): it holds the
// pod's namespaces open and exits on SIGTERM or SIGINT. As PID 1 of a
// sandbox that shares its PID namespace it would also reap zombies, so it
// does that too.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sig := make(chan os.Signal, 8)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for s := range sig {
		if s != syscall.SIGCHLD {
			return
		}
		for {
			pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
