package cli

import (
	"fmt"
	"net"
	"os"
)

// notify sends state to the service manager, as systemd's sd_notify does:
// one datagram to the unix socket in $NOTIFY_SOCKET (a leading @ names an
// abstract socket). Without $NOTIFY_SOCKET it does nothing, so run behaves
// the same outside systemd. Written here rather than imported: it is one
// datagram.
func notify(state string) error {
	name := os.Getenv("NOTIFY_SOCKET")
	if name == "" {
		return nil
	}
	if name[0] == '@' {
		name = "\x00" + name[1:]
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("notify the service manager at $NOTIFY_SOCKET %q: %w", os.Getenv("NOTIFY_SOCKET"), err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return fmt.Errorf("notify the service manager at $NOTIFY_SOCKET %q: %w", os.Getenv("NOTIFY_SOCKET"), err)
	}
	return nil
}
