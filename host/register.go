package host

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

// registerTimeout bounds one Register call. The kubelet dials back and
// calls GetDevicePluginOptions inside Register, with its own 10 s limit.
const registerTimeout = 15 * time.Second

// register tells the kubelet at <dir>/kubelet.sock about the session's
// socket, recording which kubelet.sock it talked to. It returns an error
// wrapping errKubeletAbsent when nobody listens there, and errKubeletRefused
// when the kubelet answered with an error.
func (p *Plugin) register(ctx context.Context, s *session) error {
	kubeletSock := p.host.kubeletSocket()
	id, _, err := statID(kubeletSock)
	if err != nil {
		return fmt.Errorf("%s: %w", kubeletSock, errKubeletAbsent)
	}
	// A kubelet that starts wipes every socket, ours included, and only
	// then listens on a new kubelet.sock. Inside Register it dials our
	// socket back (blocking for 10 s if it is gone) and counts the
	// registration even if that fails. So: be connected to the kubelet
	// first, then check that our socket is still ours. The kubelet that
	// accepted the connection has done its wipe, and Register can only
	// reach that kubelet (the connection is never redialled, which could
	// reach a newer one that wiped our socket since).
	conn, err := p.host.registrationConn(ctx, id)
	if err != nil {
		return err
	}
	if sid, _, err := statID(p.socketPath); err != nil || sid != s.socketID {
		return errSocketRemoved
	}
	ctx, cancel := context.WithTimeout(ctx, registerTimeout)
	defer cancel()
	_, err = pluginapi.NewRegistrationClient(conn).Register(ctx, &pluginapi.RegisterRequest{
		Version:      pluginapi.Version,
		Endpoint:     filepath.Base(p.socketPath),
		ResourceName: p.name,
		Options:      p.snapshot().options,
	})
	switch {
	case err == nil:
		s.kubelet = id
		return nil
	case ctx.Err() != nil && errors.Is(context.Cause(ctx), context.Canceled):
		return ctx.Err()
	case status.Code(err) == codes.Unavailable:
		// That kubelet is gone (or the connection broke): the next attempt
		// connects afresh.
		p.host.dropRegistrationConn(conn)
		return fmt.Errorf("%s: %v: %w", kubeletSock, status.Convert(err).Message(), errKubeletAbsent)
	}
	return fmt.Errorf("%s: %v: %w", kubeletSock, status.Convert(err).Message(), errKubeletRefused)
}

// registrationConn returns the connection to the kubelet.sock identified by id,
// shared by every plugin: registering 500 resources then costs one
// connection, not 500. It is one connection to one kubelet, made with
// dialKubelet and handed to gRPC once, never redialled: once that kubelet
// is gone, Register over it fails and the caller drops it. A new
// kubelet.sock (a kubelet restart) gets a new connection.
func (h *Host) registrationConn(ctx context.Context, id fileID) (*grpc.ClientConn, error) {
	h.reg.mu.Lock()
	defer h.reg.mu.Unlock()
	h.sweepRetiredLocked(time.Now())
	if h.reg.conn != nil && h.reg.id == id {
		return h.reg.conn, nil
	}
	if h.reg.conn != nil {
		h.retireLocked(h.reg.conn)
		h.reg.conn = nil
	}
	path := h.kubeletSocket()
	raw, err := dialKubelet(ctx, path, id)
	if err != nil {
		return nil, err
	}
	conn, err := grpc.NewClient("passthrough:///"+path,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithAuthority("localhost"),
		grpc.WithContextDialer(raw.dial),
		grpc.WithIdleTimeout(0), // going idle would close the one connection it may use
	)
	if err != nil {
		raw.Close()
		return nil, fmt.Errorf("connect to %s: %w", path, err)
	}
	h.reg.conn, h.reg.id = conn, id
	return conn, nil
}

// dropRegistrationConn closes conn if it is still the shared one.
func (h *Host) dropRegistrationConn(conn *grpc.ClientConn) {
	h.reg.mu.Lock()
	defer h.reg.mu.Unlock()
	if h.reg.conn == conn {
		h.retireLocked(conn)
		h.reg.conn = nil
	}
}

// closeRegistrationConn closes the shared connection, and every retired
// one, when the host stops.
func (h *Host) closeRegistrationConn() {
	h.reg.mu.Lock()
	defer h.reg.mu.Unlock()
	if h.reg.conn != nil {
		h.reg.conn.Close()
		h.reg.conn = nil
	}
	for _, r := range h.reg.retired {
		r.conn.Close()
	}
	h.reg.retired = nil
}

// retiredConn is a replaced registration connection and when it may close.
type retiredConn struct {
	conn    *grpc.ClientConn
	closeAt time.Time
}

// retireLocked schedules a replaced connection to close once the Register
// calls still on it have had their time: closing it at once would fail
// them as refusals rather than as an absent kubelet. The next use of the
// registration connection, or the host's stop, closes it.
func (h *Host) retireLocked(conn *grpc.ClientConn) {
	h.reg.retired = append(h.reg.retired, retiredConn{conn: conn, closeAt: time.Now().Add(registerTimeout)})
}

// sweepRetiredLocked closes the retired connections whose time is up.
func (h *Host) sweepRetiredLocked(now time.Time) {
	kept := h.reg.retired[:0]
	for _, r := range h.reg.retired {
		if now.Before(r.closeAt) {
			kept = append(kept, r)
			continue
		}
		r.conn.Close()
	}
	h.reg.retired = kept
}

// kubeletSocket is the kubelet's registration socket.
func (h *Host) kubeletSocket() string {
	return filepath.Join(h.cfg.DevicePluginDir, "kubelet.sock")
}
