package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	// binaryEnv names a prebuilt binary to test instead of building one.
	binaryEnv = "SDP_E2E_BINARY"
	// hostLogEnv=1 streams the host's logs to stderr as it runs.
	hostLogEnv = "SDP_E2E_HOST_LOG"
	// nodeName is the --node-name every host runs with.
	nodeName = "test-node"
)

// built is the binary built once per test run from the repository root.
var built struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// hostBinary returns the simple-device-plugin binary under test, building
// it on first use (with -race when the tests run with -race, so a data race
// in the host fails the e2e run).
func hostBinary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv(binaryEnv); p != "" {
		return p
	}
	built.once.Do(func() {
		built.dir, built.err = os.MkdirTemp("", "sdp-e2e-bin-")
		if built.err != nil {
			return
		}
		root, err := filepath.Abs("..")
		if err != nil {
			built.err = err
			return
		}
		built.path = filepath.Join(built.dir, "simple-device-plugin")
		args := []string{"build", "-o", built.path}
		if raceEnabled {
			args = append(args, "-race")
		}
		cmd := exec.Command("go", append(args, ".")...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			built.err = fmt.Errorf("go %s (in %s): %v\n%s", strings.Join(args, " "), root, err, out)
		}
	})
	if built.err != nil {
		t.Fatalf("build simple-device-plugin: %v", built.err)
	}
	return built.path
}

func removeBuiltBinary() {
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
}

// socketPath is where the host serves resource's device plugin: the
// resource name with "/" replaced by "_", plus ".sock". (The main module
// shortens names too long for a unix socket; the tests' names are short.)
// Written out here rather than imported, so the e2e module does not
// require the main module, whose newer grpc and prometheus would otherwise
// replace the versions the kubelet v1.37.2 code under test is released
// with.
func socketPath(resource string) string {
	return filepath.Join(pluginDir, strings.ReplaceAll(resource, "/", "_")+".sock")
}

// host is a running simple-device-plugin process.
type host struct {
	t      testing.TB
	cmd    *exec.Cmd
	listen string // host:port of /healthz, /readyz, /metrics
	out    *syncBuffer

	done     chan struct{} // closed when the process has exited
	waitErr  error
	exitedAt time.Time
}

// startHost starts the binary on manifestPath, serving the kubelet's plugin
// directory, with extra flags after the usual ones (a later flag wins:
// --node-name other, --registration plugins-registry, ...). It is stopped
// (SIGTERM, then SIGKILL) when the test ends, and its logs go to the test
// log if the test failed.
func startHost(t testing.TB, manifestPath string, extra ...string) *host {
	t.Helper()
	requireE2E(t)
	bin := hostBinary(t)
	h := &host{t: t, listen: freeLocalAddr(t), out: &syncBuffer{}, done: make(chan struct{})}
	args := []string{"run",
		"--manifest", manifestPath,
		"--device-plugin-dir", pluginDir,
		"--listen", h.listen,
		"--log-format", "json",
		"--node-name", nodeName,
	}
	// The CDI dirs on the tmpfs, never the machine's, unless a test sets its own.
	if !slices.ContainsFunc(extra, func(a string) bool { return strings.HasPrefix(a, "--cdi-spec-dir") }) {
		args = append(args, "--cdi-spec-dir", cdiSpecDir)
	}
	if !slices.ContainsFunc(extra, func(a string) bool { return strings.HasPrefix(a, "--cdi-registry-dirs") }) {
		args = append(args, "--cdi-registry-dirs", cdiStaticDir+","+cdiSpecDir)
	}
	h.cmd = exec.Command(bin, append(args, extra...)...)
	h.cmd.Env = hermeticEnv()
	var w io.Writer = h.out
	if os.Getenv(hostLogEnv) == "1" {
		w = io.MultiWriter(h.out, os.Stderr)
	}
	h.cmd.Stdout, h.cmd.Stderr = w, w
	h.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	// Should anything the host started keep its output open, Wait must
	// still return once the host itself has exited.
	h.cmd.WaitDelay = 2 * time.Second
	if err := h.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	go func() {
		h.waitErr = h.cmd.Wait()
		h.exitedAt = time.Now()
		close(h.done)
	}()
	t.Cleanup(func() {
		h.stop()
		logs := h.logs()
		if strings.Contains(logs, "WARNING: DATA RACE") {
			t.Errorf("the host reported a data race")
		}
		if t.Failed() {
			t.Logf("host %s logs:\n%s", strings.Join(append([]string{manifestPath}, extra...), " "), logs)
		}
	})
	return h
}

// hermeticEnv is the test's environment without SDP_* and NODE_NAME, so
// only the flags configure the host. A race-enabled host would sleep 1 s
// at exit (GORACE atexit_sleep_ms defaults to 1000), which is not the
// host's shutdown time: unless GORACE is set, that sleep is turned off.
func hermeticEnv() []string {
	var env []string
	gorace := false
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "SDP_") || strings.HasPrefix(kv, "NODE_NAME=") {
			continue
		}
		gorace = gorace || strings.HasPrefix(kv, "GORACE=")
		env = append(env, kv)
	}
	if !gorace {
		env = append(env, "GORACE=atexit_sleep_ms=0")
	}
	return env
}

// freeLocalAddr returns a loopback address with a port that was free a
// moment ago.
func freeLocalAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().String()
}

// stop sends SIGTERM and waits for the exit. A host still running after
// registerTimeout is hung: that fails the test, and it is killed.
func (h *host) stop() {
	if h.exited() {
		return
	}
	_ = h.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-h.done:
	case <-time.After(registerTimeout):
		h.t.Errorf("the host did not exit within %v of SIGTERM; killing it", registerTimeout)
		_ = h.cmd.Process.Kill()
		<-h.done
	}
}

func (h *host) signal(sig os.Signal) {
	h.t.Helper()
	if err := h.cmd.Process.Signal(sig); err != nil {
		h.t.Fatalf("signal host: %v", err)
	}
}

func (h *host) exited() bool {
	select {
	case <-h.done:
		return true
	default:
		return false
	}
}

// alive is a condition: the process has not exited.
func (h *host) alive() (bool, string) {
	if h.exited() {
		return false, fmt.Sprintf("the host exited: %v", h.waitErr)
	}
	return true, ""
}

// exitCode is the process's exit code, -1 if a signal killed it.
func (h *host) exitCode() int {
	return h.cmd.ProcessState.ExitCode()
}

func (h *host) logs() string { return h.out.String() }

// get fetches path from the host's --listen address.
func (h *host) get(path string) (int, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+h.listen+path, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// statusIs is a condition: GET path answers code.
func (h *host) statusIs(path string, code int) condition {
	return func() (bool, string) {
		got, body, err := h.get(path)
		if err != nil {
			return false, fmt.Sprintf("GET %s: %v", path, err)
		}
		if got != code {
			return false, fmt.Sprintf("GET %s: %d, want %d: %s", path, got, code, strings.TrimSpace(body))
		}
		return true, ""
	}
}

// metric is the sum of every sample of the named metric in /metrics whose
// labels contain all of labels (`result="error"` style), and whether any
// sample matched.
func (h *host) metric(name string, labels ...string) (float64, bool, error) {
	code, body, err := h.get("/metrics")
	if err != nil {
		return 0, false, err
	}
	if code != http.StatusOK {
		return 0, false, fmt.Errorf("GET /metrics: %d", code)
	}
	var sum float64
	found := false
	for _, line := range strings.Split(body, "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		series, value, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		match := true
		for _, l := range labels {
			if !strings.Contains(series, l) {
				match = false
			}
		}
		if !match {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			return 0, false, fmt.Errorf("metric line %q: %v", line, err)
		}
		sum += v
		found = true
	}
	return sum, found, nil
}

// metricValue is h.metric that fails the test on an error and reads a
// missing series as 0.
func (h *host) metricValue(t testing.TB, name string, labels ...string) float64 {
	t.Helper()
	v, _, err := h.metric(name, labels...)
	if err != nil {
		t.Fatalf("host metric %s%v: %v", name, labels, err)
	}
	return v
}

// syncBuffer is a bytes.Buffer safe for the process's writers and the test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// writeManifest writes a plain manifest file in a fresh temp dir.
func writeManifest(t testing.TB, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "manifest.yaml")
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatalf("write manifest: %v", err)
	}
	return path
}
