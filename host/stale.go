package host

import (
	"errors"
	"net"
	"syscall"
	"time"
)

// socketInUse reports whether a process accepts connections on the unix
// socket at path. Only a refusal means a stale socket: a full backlog or a
// timeout still means a live one.
func socketInUse(path string) bool {
	conn, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		conn.Close()
		return true
	}
	return !errors.Is(err, syscall.ECONNREFUSED) && !errors.Is(err, syscall.ENOENT)
}
