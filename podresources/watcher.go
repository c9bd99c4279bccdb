package podresources

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	api "k8s.io/kubelet/pkg/apis/podresources/v1"
)

// State says whether the holdings are known.
type State string

const (
	// StateOff: the socket is absent (no kubelet here, or not mounted);
	// holdings read before stay.
	StateOff State = "off"
	// StateOK: the last refresh succeeded.
	StateOK State = "ok"
	// StateError: the last refresh failed; the holdings are from the last
	// one that succeeded, if any.
	StateError State = "error"
)

// Snapshot is the result of the last refresh; immutable once published.
type Snapshot struct {
	State State
	// Err says why the state is not ok.
	Err string
	// Holdings are from the last successful refresh (nil before one).
	Holdings Holdings
	// Refreshed is when Holdings were read; zero before a success.
	Refreshed time.Time
	// Seq counts refreshes, successful or not.
	Seq uint64
}

// Defaults of Config.
const (
	DefaultPeriod = 10 * time.Second
	// DefaultDelay: the kubelet records an allocation right after Allocate
	// returns; by then the pod is in its list.
	DefaultDelay = 200 * time.Millisecond
	// followUp catches an allocation a loaded kubelet recorded late.
	followUp = 2 * time.Second
	// maxMessage is the kubelet's own client limit for this API.
	maxMessage  = 16 << 20
	callTimeout = 10 * time.Second
)

// Config configures a Watcher.
type Config struct {
	// Socket is the kubelet's PodResources socket.
	Socket string
	// Period is the slow refresh that sees pods go. Default DefaultPeriod.
	Period time.Duration
	// Delay is how long after a Kick the refresh comes; Kicks within it
	// share one refresh. It is also the least gap between two refreshes,
	// so a busy node cannot make this client eat the kubelet's rate limit
	// (100/s, burst 10, shared by every client on the node). Default
	// DefaultDelay.
	Delay time.Duration
	// Ours returns the resource names to keep; called once per refresh.
	Ours func() map[string]bool
	// Refreshed, if set, is told each refresh's state.
	Refreshed func(State)
	Logger    *slog.Logger
}

// Watcher keeps the holdings of our resources fresh.
type Watcher struct {
	cfg  Config
	log  *slog.Logger
	kick chan struct{}
	cur  atomic.Pointer[Snapshot]
	conn *grpc.ClientConn // owned by Run's goroutine
}

// New returns a watcher; Run refreshes.
func New(cfg Config) *Watcher {
	if cfg.Period <= 0 {
		cfg.Period = DefaultPeriod
	}
	if cfg.Delay <= 0 {
		cfg.Delay = DefaultDelay
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	w := &Watcher{cfg: cfg, log: cfg.Logger.With("pod_resources_socket", cfg.Socket), kick: make(chan struct{}, 1)}
	w.cur.Store(&Snapshot{State: StateOff, Err: "not read yet"})
	return w
}

// Snapshot returns the last refresh's result.
func (w *Watcher) Snapshot() *Snapshot { return w.cur.Load() }

// Kick asks for a refresh shortly; it never blocks, so Allocate can call it.
func (w *Watcher) Kick() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// Run refreshes at once, then Delay after Kicks and every Period, until
// ctx ends.
func (w *Watcher) Run(ctx context.Context) error {
	defer w.closeConn()
	timer := time.NewTimer(0)
	defer timer.Stop()
	due := time.Now()
	followUpDue := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-w.kick:
			// Bring the refresh forward to Delay from now, never push it
			// back: a steady stream of Kicks must not starve it.
			if at := time.Now().Add(w.cfg.Delay); at.Before(due) {
				due = at
				timer.Reset(w.cfg.Delay)
			}
			followUpDue = true
			continue
		case <-timer.C:
		}
		w.refresh(ctx)
		next := w.cfg.Period
		if followUpDue {
			next, followUpDue = followUp, false
		}
		due = time.Now().Add(next)
		timer.Reset(next)
		// The least gap: Kicks meanwhile wait in the channel, and their
		// own Delay comes after it, so a stream of Allocates costs the
		// kubelet about two reads a second, not five.
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(w.cfg.Delay):
		}
	}
}

// refresh reads the kubelet's answer and publishes the next snapshot.
func (w *Watcher) refresh(ctx context.Context) {
	prev := w.cur.Load()
	next := &Snapshot{Holdings: prev.Holdings, Refreshed: prev.Refreshed, Seq: prev.Seq + 1}
	holdings, err := w.read(ctx)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// Holdings stay: a kubelet restarting has no socket for a moment,
		// and its pods keep their devices meanwhile.
		next.State, next.Err = StateOff, fmt.Sprintf("no socket at %s", w.cfg.Socket)
		if prev.State != StateOff || prev.Seq == 0 {
			w.log.Info("the kubelet's PodResources socket is absent: who holds which device is unknown until it appears (mount /var/lib/kubelet/pod-resources, or set --pod-resources-socket)")
		}
	case err != nil:
		next.State, next.Err = StateError, err.Error()
		if prev.State != StateError {
			w.log.Warn("cannot read the kubelet's PodResources API; keeping the last answer and retrying", "err", err)
		}
	default:
		next.State, next.Holdings, next.Refreshed = StateOK, holdings, time.Now()
		if prev.State != StateOK {
			w.log.Info("reading who holds which device from the kubelet's PodResources API")
		}
	}
	w.cur.Store(next)
	if w.cfg.Refreshed != nil {
		w.cfg.Refreshed(next.State)
	}
}

// read asks the kubelet once. A missing socket is fs.ErrNotExist.
func (w *Watcher) read(ctx context.Context) (Holdings, error) {
	if _, err := os.Stat(w.cfg.Socket); err != nil {
		w.closeConn()
		return nil, err
	}
	if w.conn == nil {
		conn, err := grpc.NewClient("unix://"+w.cfg.Socket,
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMessage)))
		if err != nil {
			return nil, fmt.Errorf("connect to %s: %w", w.cfg.Socket, err)
		}
		w.conn = conn
	}
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	resp, err := api.NewPodResourcesListerClient(w.conn).List(ctx, &api.ListPodResourcesRequest{})
	if err != nil {
		// A new connection next time: a restarted kubelet has a new
		// socket, and a fresh dial beats gRPC's reconnect backoff. Over
		// the rate limit the connection is fine.
		if status.Code(err) != codes.ResourceExhausted {
			w.closeConn()
		}
		return nil, fmt.Errorf("List on %s: %w", w.cfg.Socket, err)
	}
	var ours map[string]bool
	if w.cfg.Ours != nil {
		ours = w.cfg.Ours()
	}
	return FromList(resp, ours), nil
}

func (w *Watcher) closeConn() {
	if w.conn != nil {
		w.conn.Close()
		w.conn = nil
	}
}
