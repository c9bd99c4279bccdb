package host

import (
	"context"
	"errors"
	"os"
	"sync"
	"time"
)

// How long a stopping session waits for the kubelet to hang up.
const (
	// The kubelet refuses the same socket path again ("already connected")
	// until it has dropped the old endpoint.
	restartHangupWait = time.Second
	// After the empty list the kubelet hangs up at once, and shutdown must
	// stay well within 2 s.
	finalHangupWait = 500 * time.Millisecond
)

// run keeps a session alive until ctx ends: a new one at once when the node
// invalidated the old, after a backoff when it failed. The health check
// runs beside it, so a probe stuck on a hung mount stalls that resource's
// health only; the plugin is done when both have stopped.
func (p *Plugin) run(ctx context.Context) {
	var helpers sync.WaitGroup
	helpers.Go(func() { p.runHealth(ctx) })
	helpers.Go(func() { p.runCDI(ctx) })
	helpers.Go(func() { p.runDiscover(ctx) })
	var tried sync.Once
	triedNow := func() { tried.Do(func() { close(p.started) }) }
	defer func() {
		triedNow()
		helpers.Wait()
		close(p.done)
	}()
	// The spec first: a pod the kubelet admits once the resource is
	// registered must find its CDI devices defined.
	if p.snapshot().res.CDIKind() != "" {
		// A spec that cannot be written holds this resource back, not the
		// host's readiness to serve the others.
		if !p.writeSpecUntilDone(ctx, triedNow) {
			return
		}
		p.checkCDI(p.snapshot().res)
	}
	bo := p.host.cfg.Backoff
	for {
		started := time.Now()
		err := p.runSession(ctx, triedNow)
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
		if !p.sleepBackoff(ctx, delay, errors.Is(err, errPathTaken)) {
			return
		}
	}
}

// runSession serves one session: socket, server, registration (retried
// while the kubelet is absent), then watches for anything that ends it.
// tried is called once the socket listens, or could not.
func (p *Plugin) runSession(ctx context.Context, tried func()) error {
	s, err := p.startSession()
	tried()
	if err != nil {
		return err
	}
	defer func() {
		if ctx.Err() != nil {
			p.stopSession(s, true, finalHangupWait)
		} else {
			p.stopSession(s, false, restartHangupWait)
		}
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

// registeredNow counts the registration before it shows, so whoever sees
// /readyz turn 200 finds it in /metrics too.
func (p *Plugin) registeredNow() {
	p.host.metrics.registrations.WithLabelValues(p.name).Inc()
	p.setRegistered(true)
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
		err := p.register(ctx, s)
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
		select {
		case <-ctx.Done():
			return nil
		case <-s.serving:
			return errors.Join(errServerStopped, s.serveErr)
		case <-p.wake:
			retry.Reset() // a (new) kubelet.sock: back to quick retries
		case <-p.check:
			if !p.ownsSocket(s) {
				return errSocketRemoved
			}
		case <-time.After(retry.Next()):
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
		{errPathTaken, "foreign_file"},
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

// sleepBackoff waits delay, or less: until the kubelet comes back or, if
// a file not ours blocked the socket path, until that path is free (so a
// file left for days costs no more retries than the backoff allows).
// False if ctx ended.
func (p *Plugin) sleepBackoff(ctx context.Context, delay time.Duration, pathBlocked bool) bool {
	var check <-chan struct{} // nil unless the path is blocked: checks wait for the next session
	if pathBlocked {
		check = p.check
	}
	timer := time.After(delay)
	for {
		select {
		case <-ctx.Done():
			return false
		case <-p.wake:
			return true
		case <-timer:
			return true
		case <-check:
			if _, err := os.Lstat(p.socketPath); os.IsNotExist(err) {
				return true
			}
		}
	}
}
