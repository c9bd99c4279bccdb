package host

import (
	"errors"
	"net"
	"syscall"
	"time"
)

// socketInUse reports whether a process accepts connections on the unix
// socket at path. A socket nobody listens on refuses at once: stale, left
// by a crash. Anything else (a connection, a full backlog, a timeout) means
// a live socket that is not ours to remove.
func socketInUse(path string) bool {
	conn, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		conn.Close()
		return true
	}
	return !errors.Is(err, syscall.ECONNREFUSED) && !errors.Is(err, syscall.ENOENT)
}
