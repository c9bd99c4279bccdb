package kubeletsim

import (
	"context"
	"net"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// dialTimeout bounds connecting to a plugin, as the kubelet bounds it.
const dialTimeout = 10 * time.Second

// Dial connects to a plugin's socket as the kubelet does
// (k8s.io/kubernetes pkg/kubelet/cm/devicemanager/plugin/v1beta1, v1.37):
// a blocking dial bounded by 10 s and no call options, so the receive
// limit is grpc-go's default 4 MiB.
func Dial(ctx context.Context, socketPath string) (*grpc.ClientConn, error) {
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	// grpc.DialContext and WithBlock are deprecated; the kubelet still uses them.
	return grpc.DialContext(ctx, socketPath,
		grpc.WithAuthority("localhost"),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithBlock(),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", addr)
		}),
	)
}

// dial connects to a plugin the way the Config asks: as the kubelet does,
// or lazily, leaving the wait for the plugin to the first call.
func (k *Kubelet) dial(ctx context.Context, sock string) (*grpc.ClientConn, error) {
	if k.cfg.KubeletDial {
		return Dial(ctx, sock)
	}
	return grpc.NewClient("unix:"+sock,
		grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithAuthority("localhost"))
}

// socketState says what a socket looked like after a failed dial: it tells
// a plugin that registered a socket it no longer serves from one that hangs.
func socketState(sock string) string {
	fi, err := os.Lstat(sock)
	if err != nil {
		return "absent"
	}
	state := fi.Mode().String()
	c, err := net.Dial("unix", sock)
	if err != nil {
		return state + ", dial: " + err.Error()
	}
	c.Close()
	return state + ", dials now"
}
