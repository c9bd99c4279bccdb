package host

import (
	"context"
	"errors"
	"time"
)

// Stop timeouts: how long a session waits for the kubelet to hang up.
const (
	// Before registering the same socket path again: the kubelet must have
	// dropped the old endpoint or it refuses ("already connected").
	restartHangupWait = time.Second
	// On removal or shutdown the empty list is sent; the kubelet hangs up
	// at once, and shutdown must stay well within 2 s.
	finalHangupWait = 500 * time.Millisecond
)

// run is the plugin's child of the supervisor: it keeps a session alive
// until ctx ends, starting a new one at once when the node invalidated the
// old (socket removed, kubelet restarted) and after a capped, jittered
// backoff when it failed. Other plugins are never touched.
func (p *Plugin) run(ctx context.Context) {
	defer close(p.done)
	bo := p.host.cfg.Backoff
	for {
		started := time.Now()
		err := p.runSession(ctx)
		if ctx.Err() != nil {
			return
		}
		reason := restartReason(err)
		p.host.metrics.restarts.WithLabelValues(p.name, reason).Inc()
		if immediate(err) {
			p.log.Info("starting a new session", "reason", reason, "socket", p.socketPath)
			continue
		}
		if time.Since(started) >= bo.Stable {
			bo.Reset()
		}
		delay := bo.Next()
		p.log.Warn("plugin failed; retrying", "reason", reason, "err", err, "retry_in", delay.Round(time.Millisecond).String())
		if !sleep(ctx, delay, p.wake) {
			return
		}
	}
}

// runSession serves one session: socket, server, registration (retried
// while the kubelet is absent), then watches for anything that ends it.
func (p *Plugin) runSession(ctx context.Context) error {
	s, err := p.startSession()
	if err != nil {
		return err
	}
	wait := restartHangupWait
	defer func() {
		final := ctx.Err() != nil
		if final {
			wait = finalHangupWait
		}
		p.stopSession(s, final, wait)
	}()

	if p.host.cfg.Registration == RegisterKubeletSocket {
		if err := p.registerUntilDone(ctx, s); err != nil || ctx.Err() != nil {
			return err
		}
		p.registeredNow()
	} else {
		p.log.Info("waiting for the kubelet's plugin watcher", "socket", p.socketPath)
	}

	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.serving:
			return errors.Join(errServerStopped, s.serveErr)
		case err := <-s.notified:
			if err != nil {
				return err
			}
			p.registeredNow()
			continue
		case <-p.check:
		case <-p.wake:
		}
		if err := p.checkSession(s); err != nil {
			return err
		}
	}
}

func (p *Plugin) registeredNow() {
	p.setRegistered(true)
	p.host.metrics.registrations.WithLabelValues(p.name).Inc()
	p.log.Info("registered with the kubelet", "socket", p.socketPath, "devices", len(p.snapshot().res.IDs), "via", string(p.host.cfg.Registration))
}

// registerUntilDone registers, waiting for the kubelet while it is absent:
// a new kubelet.sock wakes it at once, a slow retry covers missed events.
func (p *Plugin) registerUntilDone(ctx context.Context, s *session) error {
	// The kubelet creates kubelet.sock a moment before it accepts on it, so
	// a dial right after the wake can be refused: retry quickly first.
	retry := Backoff{Initial: 10 * time.Millisecond, Max: 5 * time.Second}
	logged := false
	for {
		// A restarting kubelet deletes every socket, then creates
		// kubelet.sock: the wake can be picked before the check that says
		// our socket is gone. Registering a deleted socket would leave the
		// kubelet dialling it for 10 s; start a new session instead.
		if id, _, err := statID(p.socketPath); err != nil || id != s.socketID {
			return errSocketRemoved
		}
		err := p.registerWatching(ctx, s)
		if errors.Is(err, errSocketRemoved) {
			return err
		}
		if err == nil || ctx.Err() != nil {
			return nil
		}
		if !errors.Is(err, errKubeletAbsent) {
			return err
		}
		if !logged {
			p.log.Info("waiting for the kubelet", "err", err)
			logged = true
		}
		timer := time.NewTimer(retry.Next())
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-s.serving:
			timer.Stop()
			return errors.Join(errServerStopped, s.serveErr)
		case <-p.wake:
			retry.Reset() // a (new) kubelet.sock: back to quick retries
		case <-p.check:
			if id, _, err := statID(p.socketPath); err != nil || id != s.socketID {
				timer.Stop()
				return errSocketRemoved
			}
		case <-timer.C:
		}
		timer.Stop()
	}
}

// registerWatching registers, abandoning the call when the session's socket
// disappears meanwhile: the kubelet would dial the deleted socket for its
// full 10 s before failing, and the plugin would wait with it. (The check
// before the call leaves a window: a kubelet wiping the dir can delete the
// socket between the check and its dial, more easily when the CPU is busy.)
func (p *Plugin) registerWatching(ctx context.Context, s *session) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- p.register(ctx, s) }()
	checked := false
	defer func() {
		if checked {
			poke(p.check) // the check may have been for something else too
		}
	}()
	for {
		select {
		case err := <-done:
			return err
		case <-p.check:
			checked = true
			if id, _, err := statID(p.socketPath); err != nil || id != s.socketID {
				cancel()
				<-done
				return errSocketRemoved
			}
		}
	}
}

func (p *Plugin) setRegistered(v bool) {
	p.registered.Store(v)
	if v {
		p.mRegistered.Set(1)
	} else {
		p.mRegistered.Set(0)
	}
}

// immediate reports whether err is the node telling us to start over (no
// backoff), rather than a failure.
func immediate(err error) bool {
	return errors.Is(err, errSocketRemoved) || errors.Is(err, errKubeletRestart) || errors.Is(err, errReregister)
}

func restartReason(err error) string {
	for _, e := range []struct {
		err    error
		reason string
	}{
		{errSocketRemoved, "socket_removed"},
		{errKubeletRestart, "kubelet_restart"},
		{errReregister, "reregister"},
		{errNotOurSocket, "foreign_file"},
		{errDirUnusable, "dir_unusable"},
		{errKubeletRefused, "registration_refused"},
		{errServerStopped, "server_error"},
	} {
		if errors.Is(err, e.err) {
			return e.reason
		}
	}
	return "error"
}

// sleep waits d, or less if wake fires; false if ctx ended.
func sleep(ctx context.Context, d time.Duration, wake <-chan struct{}) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-wake:
	case <-timer.C:
	}
	return true
}
