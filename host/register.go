package host

import (
	"context"
	"errors"
	"fmt"
	"os"
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
	// registration even if that fails. So: connect to the kubelet first,
	// then check that our socket is still ours. The kubelet that accepted
	// the connection has done its wipe, and Register can only reach that
	// kubelet (the connection is never redialled, which could reach a
	// newer one that wiped our socket since).
	raw, err := dialKubelet(ctx, kubeletSock, id)
	if err != nil {
		return err
	}
	if sid, _, err := statID(p.socketPath); err != nil || sid != s.socketID {
		raw.Close()
		return errSocketRemoved
	}
	conn, err := grpc.NewClient("passthrough:///"+kubeletSock,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithAuthority("localhost"),
		grpc.WithContextDialer(raw.dial),
	)
	if err != nil {
		raw.Close()
		return fmt.Errorf("connect to %s: %w", kubeletSock, err)
	}
	defer conn.Close()
	defer raw.Close() // if gRPC never dialled
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
		return fmt.Errorf("%s: %v: %w", kubeletSock, status.Convert(err).Message(), errKubeletAbsent)
	}
	return fmt.Errorf("%s: %v: %w", kubeletSock, status.Convert(err).Message(), errKubeletRefused)
}

// kubeletSocket is the kubelet's registration socket.
func (h *Host) kubeletSocket() string {
	return filepath.Join(h.cfg.DevicePluginDir, "kubelet.sock")
}

// kubeletPresent reports whether kubelet.sock exists.
func (h *Host) kubeletPresent() bool {
	_, err := os.Stat(h.kubeletSocket())
	return err == nil
}
