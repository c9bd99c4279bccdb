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

// register tells the kubelet at kubelet.sock about the session's socket,
// recording which kubelet.sock it talked to. Errors wrap errKubeletAbsent
// or errKubeletRefused.
func (p *Plugin) register(ctx context.Context, s *session) error {
	kubeletSock := p.host.kubeletSocket()
	id, err := statID(kubeletSock)
	if err != nil {
		return fmt.Errorf("%s: %w", kubeletSock, errKubeletAbsent)
	}
	// A starting kubelet wipes our socket before it listens, and Register
	// of a wiped socket blocks it for 10 s and counts as a failure. So
	// connect first, then check our socket: the kubelet that accepted has
	// done its wipe, and the connection never reaches a newer one.
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
	p.log.Debug("calling Register", "kubelet", kubeletSock, "endpoint", filepath.Base(p.socketPath))
	_, err = pluginapi.NewRegistrationClient(rc.conn).Register(callCtx, &pluginapi.RegisterRequest{
		Version:      pluginapi.Version,
		Endpoint:     filepath.Base(p.socketPath),
		ResourceName: p.name,
		Options:      p.snapshot().options,
	})
	if err != nil {
		p.log.Debug("Register failed", "kubelet", kubeletSock, "err", err)
	}
	switch {
	case err == nil:
		s.kubelet = id
		return nil
	case ctx.Err() != nil:
		return fmt.Errorf("register %s: %w", p.name, ctx.Err()) // stopped, not refused
	case status.Code(err) == codes.Unavailable:
		// That kubelet is gone: the next attempt connects afresh.
		p.host.dropRegistrationConn(rc)
		return fmt.Errorf("%s: %v: %w", kubeletSock, status.Convert(err).Message(), errKubeletAbsent)
	}
	return fmt.Errorf("%s: %v: %w", kubeletSock, status.Convert(err).Message(), errKubeletRefused)
}

// regConn is the registration connection to one kubelet, shared by every
// plugin and never redialled. A replaced one closes when its last Register
// returns, so a call in flight never fails for our closing it.
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
		h.retireLocked()
	}
	path := h.kubeletSocket()
	h.log.Debug("dialling the kubelet", "socket", path)
	raw, err := dialKubelet(ctx, path, id)
	if err != nil {
		h.log.Debug("cannot dial the kubelet", "socket", path, "err", err)
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
	// Handshake now: a kubelet stopping waits up to 120 s for a connection
	// that has not sent its preface.
	conn.Connect()
	h.reg.cur = &regConn{conn: conn, raw: raw, id: id, inflight: 1}
	return h.reg.cur, nil
}

// close closes rc, and the connection under it should gRPC never have taken it.
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
		h.retireLocked()
	}
}

// closeRegistrationConn lets the shared connection go when the host stops.
func (h *Host) closeRegistrationConn() {
	h.reg.mu.Lock()
	defer h.reg.mu.Unlock()
	if h.reg.cur != nil {
		h.retireLocked()
	}
}

// retireLocked takes the current connection out of use and closes it once
// no call uses it.
func (h *Host) retireLocked() {
	rc := h.reg.cur
	h.reg.cur = nil
	rc.retired = true
	if rc.inflight == 0 {
		rc.close()
	}
}

// kubeletSocket is the kubelet's registration socket.
func (h *Host) kubeletSocket() string {
	return filepath.Join(h.cfg.DevicePluginDir, kubeletSocketName)
}
