package host

import "context"

// Serving returns once the host is ready for a kubelet to start: the first
// manifest applied, the socket dir watched for kubelet.sock, and every
// plugin's socket listening (or its first try failed, which the plugin
// retries on its own). A service manager that starts the kubelet after
// this (systemd's Type=notify) gets registrations within milliseconds of
// kubelet.sock appearing. It returns ctx's error if ctx ends first.
func (h *Host) Serving(ctx context.Context) error {
	for _, ch := range []chan struct{}{h.applied, h.watching} {
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	var started []chan struct{}
	h.forEachPlugin(func(p *Plugin) { started = append(started, p.started) })
	for _, ch := range started {
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}
