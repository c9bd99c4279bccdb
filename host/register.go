package host

import (
	"context"
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
	id, err := statID(kubeletSock)
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
	rc, err := p.host.acquireRegistrationConn(ctx, id)
	if err != nil {
		return err
	}
	defer p.host.releaseRegistrationConn(rc)
	if !p.ownsSocket(s) {
		return errSocketRemoved
	}
	callCtx, cancel := context.WithTimeout(ctx, registerTimeout)
	defer cancel()
	_, err = pluginapi.NewRegistrationClient(rc.conn).Register(callCtx, &pluginapi.RegisterRequest{
		Version:      pluginapi.Version,
		Endpoint:     filepath.Base(p.socketPath),
		ResourceName: p.name,
		Options:      p.snapshot().options,
	})
	switch {
	case err == nil:
		s.kubelet = id
		return nil
	case ctx.Err() != nil:
		// Stopped (shutdown or removal), not refused.
		return ctx.Err()
	case status.Code(err) == codes.Unavailable:
		// That kubelet is gone (or the connection broke): the next attempt
		// connects afresh.
		p.host.dropRegistrationConn(rc)
		return fmt.Errorf("%s: %v: %w", kubeletSock, status.Convert(err).Message(), errKubeletAbsent)
	}
	return fmt.Errorf("%s: %v: %w", kubeletSock, status.Convert(err).Message(), errKubeletRefused)
}

// regConn is the registration connection to one kubelet, shared by every
// plugin: registering 500 resources then costs one connection, not 500.
// It is made with dialKubelet and handed to gRPC once, never redialled:
// once that kubelet is gone, Register over it fails and the caller drops
// it. A replaced connection closes when its last Register returns, so a
// call in flight never fails for our closing it.
type regConn struct {
	conn     *grpc.ClientConn
	raw      *kubeletConn // what conn dials; closed with conn should gRPC never take it
	id       fileID       // the kubelet.sock it was made for
	inflight int          // Register calls using it; guarded by Host.reg.mu
	retired  bool
}

// acquireRegistrationConn returns the connection to the kubelet.sock
// identified by id, making it if needed; release it after the call.
func (h *Host) acquireRegistrationConn(ctx context.Context, id fileID) (*regConn, error) {
	h.reg.mu.Lock()
	defer h.reg.mu.Unlock()
	if rc := h.reg.cur; rc != nil && rc.id == id {
		rc.inflight++
		return rc, nil
	}
	if h.reg.cur != nil {
		h.retireLocked(h.reg.cur)
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
	// Handshake now, not at the first Register: the kubelet's gRPC server
	// holds a connection that has not sent its preface for up to 120 s,
	// and its Stop waits for that (a kubelet restarting would hang).
	conn.Connect()
	h.reg.cur = &regConn{conn: conn, raw: raw, id: id, inflight: 1}
	return h.reg.cur, nil
}

// close closes rc's gRPC connection and, should gRPC never have taken
// it, the connection to the kubelet under it.
func (rc *regConn) close() {
	rc.conn.Close()
	rc.raw.Close()
}

// releaseRegistrationConn ends a use of rc, closing it if it was replaced
// and this was its last call.
func (h *Host) releaseRegistrationConn(rc *regConn) {
	h.reg.mu.Lock()
	defer h.reg.mu.Unlock()
	rc.inflight--
	if rc.retired && rc.inflight == 0 {
		rc.close()
	}
}

// dropRegistrationConn stops sharing rc: its kubelet is gone.
func (h *Host) dropRegistrationConn(rc *regConn) {
	h.reg.mu.Lock()
	defer h.reg.mu.Unlock()
	if h.reg.cur == rc {
		h.retireLocked(rc)
	}
}

// closeRegistrationConn lets the shared connection go when the host stops
// (the Register calls still on it end with their plugins' contexts).
func (h *Host) closeRegistrationConn() {
	h.reg.mu.Lock()
	defer h.reg.mu.Unlock()
	if h.reg.cur != nil {
		h.retireLocked(h.reg.cur)
	}
}

// retireLocked takes rc out of use and closes it once no call uses it.
func (h *Host) retireLocked(rc *regConn) {
	if h.reg.cur == rc {
		h.reg.cur = nil
	}
	if !rc.retired {
		rc.retired = true
		if rc.inflight == 0 {
			rc.close()
		}
	}
}

// kubeletSocket is the kubelet's registration socket.
func (h *Host) kubeletSocket() string {
	return filepath.Join(h.cfg.DevicePluginDir, kubeletSocketName)
}
