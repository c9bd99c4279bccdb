package host

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/stats"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
)

// A session is one life of a plugin's gRPC server: a fresh socket, a
// server, one registration. Anything that invalidates it ends it, and the
// plugin starts a new one.
type session struct {
	conns    *connCounter // the kubelet's connections to server
	server   *grpc.Server
	serving  chan struct{} // closed when Serve returns; the session owns that goroutine
	serveErr error         // Serve's result, valid once serving is closed
	socketID fileID        // identity of the socket file we created
	kubelet  fileID        // identity of kubelet.sock we registered with

	ending chan struct{} // closed to end every ListAndWatch stream
	final  atomic.Bool   // set before ending: streams send an empty list

	notified chan error // plugins-registry mode, one slot: the kubelet's verdict, nil = registered
}

// notify records the plugin watcher's verdict unless one is already pending.
func (s *session) notify(err error) {
	select {
	case s.notified <- err:
	default:
	}
}

// Reasons a session ends.
var (
	errSocketRemoved  = errors.New("socket removed")
	errKubeletRestart = errors.New("kubelet restarted")
	errReregister     = errors.New("registration options changed")
	errPathTaken      = errors.New("socket path taken")
	errDirUnusable    = errors.New("device-plugin dir unusable")
	errKubeletAbsent  = errors.New("kubelet not listening")
	errKubeletRefused = errors.New("kubelet refused the registration")
	errServerStopped  = errors.New("gRPC server stopped")
)

// maxRecvMessageSize lets Allocate requests list many IDs.
const maxRecvMessageSize = 16 << 20

// fileID tells apart a file replaced under the same name; the change time
// is part of it because some file systems reuse inode numbers quickly.
type fileID struct {
	dev, ino uint64
	ctime    int64
}

func statID(path string) (fileID, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return fileID{}, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}, nil
	}
	return fileID{dev: uint64(st.Dev), ino: st.Ino, ctime: st.Ctim.Nano()}, nil
}

// ownsSocket reports whether the socket file is still the one s created.
func (p *Plugin) ownsSocket(s *session) bool {
	id, err := statID(p.socketPath)
	return err == nil && id == s.socketID
}

// startSession creates the socket (removing a stale socket first, never
// anything else) and starts serving on it.
func (p *Plugin) startSession() (*session, error) {
	fi, err := os.Lstat(p.socketPath)
	switch {
	case err == nil && fi.Mode()&fs.ModeSocket == 0:
		return nil, fmt.Errorf("%w: %s exists and is %s, not a socket; refusing to remove it (remove or rename it, or rename the resource)",
			errPathTaken, p.socketPath, describeMode(fi.Mode()))
	case err == nil:
		// A socket left by an earlier run is ours to replace; a live one is not.
		if socketInUse(p.socketPath) {
			return nil, fmt.Errorf("%w: %s is a live socket: another process is listening on it; refusing to remove it (stop that process, or rename the resource)",
				errPathTaken, p.socketPath)
		}
		if err := os.Remove(p.socketPath); err != nil && !os.IsNotExist(err) {
			return nil, fmt.Errorf("remove stale socket %s: %w: %w", p.socketPath, err, errDirUnusable)
		}
		p.log.Info("removed a stale socket left by an earlier run", "socket", p.socketPath)
	case !os.IsNotExist(err):
		return nil, fmt.Errorf("stat %s: %w: %w", p.socketPath, err, errDirUnusable)
	}
	lis, err := net.Listen("unix", p.socketPath)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w: %w", p.socketPath, err, errDirUnusable)
	}
	// Never unlink a file that a later session or another process put here.
	lis.(*net.UnixListener).SetUnlinkOnClose(false)
	p.log.Debug("serving the DevicePlugin service", "socket", p.socketPath)
	id, err := statID(p.socketPath)
	if err != nil {
		lis.Close()
		if os.IsNotExist(err) {
			// A restarting kubelet is wiping the dir: start again.
			return nil, fmt.Errorf("new socket %s: %w", p.socketPath, errSocketRemoved)
		}
		return nil, fmt.Errorf("stat new socket %s: %w: %w", p.socketPath, err, errDirUnusable)
	}
	s := &session{
		conns:    newConnCounter(),
		serving:  make(chan struct{}),
		socketID: id,
		ending:   make(chan struct{}),
		notified: make(chan error, 1),
	}
	s.server = grpc.NewServer(grpc.MaxRecvMsgSize(maxRecvMessageSize), grpc.StatsHandler(s.conns))
	pluginapi.RegisterDevicePluginServer(s.server, &service{p: p, sess: s})
	if p.host.cfg.Registration == RegisterPluginsRegistry {
		registerapi.RegisterRegistrationServer(s.server, &registryService{p: p, sess: s})
	}
	go func() {
		s.serveErr = s.server.Serve(lis)
		close(s.serving)
	}()
	return s, nil
}

// stopSession ends the streams (with an empty device list when final) and
// gives the kubelet up to wait to hang up, so it has forgotten this endpoint
// before the same socket path registers again; then it removes our socket.
func (p *Plugin) stopSession(s *session, final bool, wait time.Duration) {
	p.setRegistered(false)
	s.final.Store(final)
	close(s.ending)
	s.conns.waitIdle(wait)
	s.server.Stop()
	<-s.serving
	if p.ownsSocket(s) {
		if err := os.Remove(p.socketPath); err != nil && !os.IsNotExist(err) {
			p.log.Warn("cannot remove socket", "socket", p.socketPath, "err", err)
		}
	}
}

// checkSession says why the session is no longer valid, or nil.
func (p *Plugin) checkSession(s *session) error {
	if !p.ownsSocket(s) {
		return errSocketRemoved
	}
	if p.host.cfg.Registration == RegisterKubeletSocket {
		if k, err := statID(p.host.kubeletSocket()); err != nil || k != s.kubelet {
			return errKubeletRestart
		}
	}
	if p.reregister.Swap(false) {
		return errReregister
	}
	return nil
}

func describeMode(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m.IsRegular():
		return "a regular file"
	case m&fs.ModeSymlink != 0:
		return "a symlink"
	}
	return "a " + m.Type().String() + " file"
}

// connCounter counts the server's open connections, so a session can
// wait for the kubelet to hang up: it would otherwise drop the next
// registration when it notices the old stream's end.
type connCounter struct {
	mu      sync.Mutex
	open    int
	changed chan struct{} // closed and replaced at every change of open
}

func newConnCounter() *connCounter { return &connCounter{changed: make(chan struct{})} }

func (c *connCounter) add(delta int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.open += delta
	close(c.changed)
	c.changed = make(chan struct{})
}

func (c *connCounter) state() (int, <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.open, c.changed
}

// waitIdle waits until no connection is open, at most d.
func (c *connCounter) waitIdle(d time.Duration) {
	timer := time.After(d)
	for {
		open, changed := c.state()
		if open == 0 {
			return
		}
		select {
		case <-changed:
		case <-timer:
			return
		}
	}
}

// The stats.Handler methods: connCounter follows connections only.
func (c *connCounter) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }
func (c *connCounter) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context   { return ctx }
func (c *connCounter) HandleRPC(context.Context, stats.RPCStats)                         {}

func (c *connCounter) HandleConn(_ context.Context, st stats.ConnStats) {
	switch st.(type) {
	case *stats.ConnBegin:
		c.add(1)
	case *stats.ConnEnd:
		c.add(-1)
	}
}
