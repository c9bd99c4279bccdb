package host

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
)

// kubeletConn is one connection to kubelet.sock, handed to gRPC once so a
// Register over it reaches the kubelet that accepted it, or fails.
type kubeletConn struct {
	mu   sync.Mutex
	conn net.Conn // nil once handed over or closed
}

var errRegistrationConnGone = errors.New("the connection to the kubelet is gone")

// dialKubelet connects to the kubelet.sock at path, which must still be the
// file id: otherwise a kubelet restarted meanwhile.
func dialKubelet(ctx context.Context, path string, id fileID) (*kubeletConn, error) {
	conn, err := (&net.Dialer{}).DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("%s: %v: %w", path, err, errKubeletAbsent)
	}
	if now, err := statID(path); err != nil || now != id {
		conn.Close()
		return nil, fmt.Errorf("%s: replaced while connecting (a kubelet restart): %w", path, errKubeletAbsent)
	}
	return &kubeletConn{conn: conn}, nil
}

// dial is gRPC's dialer: the connection the first time, an error after.
func (k *kubeletConn) dial(context.Context, string) (net.Conn, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.conn == nil {
		return nil, errRegistrationConnGone
	}
	conn := k.conn
	k.conn = nil
	return conn, nil
}

// Close closes the connection unless gRPC took it.
func (k *kubeletConn) Close() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.conn != nil {
		k.conn.Close()
		k.conn = nil
	}
}
