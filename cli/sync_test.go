package cli

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// sync's mistakes of use are told before anything runs.
func TestSyncCommandLine(t *testing.T) {
	unsetEnv(t, "SDP_MANIFEST", "SDP_SYNC_TO", "SDP_TO", "SDP_VALIDATE_WITH", "SDP_LISTEN", "SDP_POLL")
	hostDir := t.TempDir()
	tests := []struct {
		name       string
		env        map[string]string
		args       []string
		wantCode   int
		wantStderr []string
	}{
		{name: "standard input cannot be watched", args: []string{"sync", "-", "--to", filepath.Join(hostDir, "manifest.yaml")}, wantCode: exitUsage,
			wantStderr: []string{"sync watches its manifest for changes, so it cannot read standard input", "See 'simple-device-plugin sync --help'."}},
		{name: "no manifest", args: []string{"sync", "--to", filepath.Join(hostDir, "manifest.yaml")}, wantCode: exitUsage,
			wantStderr: []string{"no manifest: simple-device-plugin sync --from FILE (or FILE, --manifest FILE, SDP_MANIFEST)"}},
		{name: "the host's dir is not mounted", args: []string{"sync", exampleManifest, "--to", "/nonexistent/etc/manifest.yaml"}, wantCode: exitFailure,
			wantStderr: []string{"--to /nonexistent/etc/manifest.yaml: its dir /nonexistent/etc is not a directory (mount the host's /etc/simple-device-plugin there, or set --to"}},
		{name: "SDP_SYNC_TO stands for --to", env: map[string]string{"SDP_SYNC_TO": "/nonexistent/etc/manifest.yaml"}, args: []string{"sync", exampleManifest}, wantCode: exitFailure,
			wantStderr: []string{"--to /nonexistent/etc/manifest.yaml: its dir"}},
		{name: "the target is the manifest", args: []string{"sync", exampleManifest, "--to", exampleManifest}, wantCode: exitUsage,
			wantStderr: []string{"is the manifest itself"}},
		{name: "empty --to", args: []string{"sync", exampleManifest, "--to", ""}, wantCode: exitUsage, wantStderr: []string{"--to is empty"}},
		{name: "two manifests", args: []string{"sync", exampleManifest, exampleManifest}, wantCode: exitUsage, wantStderr: []string{"one manifest at a time"}},
		{name: "--from and --manifest differ", args: []string{"sync", "--from", exampleManifest, "--manifest", "other.yaml", "--to", filepath.Join(hostDir, "manifest.yaml")}, wantCode: exitUsage,
			wantStderr: []string{"give the manifest once"}},
		{name: "--from and FILE differ", args: []string{"sync", "other.yaml", "--from", exampleManifest, "--to", filepath.Join(hostDir, "manifest.yaml")}, wantCode: exitUsage,
			wantStderr: []string{"give the manifest once"}},
		{name: "--poll out of range", args: []string{"sync", exampleManifest, "--poll", "1ms"}, wantCode: exitUsage, wantStderr: []string{"must be between 100ms and 1h"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			code, stdout, stderr := runMain(t, tc.args...)
			checkRun(t, code, stdout, stderr, tc.wantCode, nil, tc.wantStderr)
		})
	}
}

// sync run as the DaemonSet runs it: the host file written, /readyz and
// /metrics telling so over HTTP; then an invalid manifest: nothing
// written, not ready, each problem logged; SIGTERM (the context) ends it
// with exit 0.
func TestSyncCommand(t *testing.T) {
	unsetEnv(t, "SDP_MANIFEST", "SDP_SYNC_TO", "SDP_VALIDATE_WITH", "SDP_LISTEN", "SDP_POLL")
	good, err := os.ReadFile(exampleManifest)
	if err != nil {
		t.Fatal(err)
	}
	source := writeFile(t, t.TempDir(), "manifest.yaml", string(good))
	target := filepath.Join(t.TempDir(), "manifest.yaml")
	addr := freeAddress(t)

	stop := startCommand(t, "sync", source, "--to", target, "--validate-with", "", "--listen", addr, "--poll", "200ms").stop

	waitForHTTP(t, addr, "/readyz", http.StatusOK, "ok")
	if got, _ := os.ReadFile(target); !bytes.Equal(got, good) {
		t.Errorf("host file %q, want the manifest", got)
	}
	metrics := waitForHTTP(t, addr, "/metrics", http.StatusOK, `sdp_sync_total{result="written"} 1`)
	for _, want := range []string{"sdp_sync_in_sync 1", `sdp_sync_total{result="invalid"} 0`, "sdp_sync_last_success_timestamp_seconds "} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q:\n%s", want, metrics)
		}
	}
	waitForHTTP(t, addr, "/healthz", http.StatusOK, "ok")

	writeFile(t, filepath.Dir(source), "manifest.yaml", strings.Replace(string(good), "count: 4", "count: -4", 1))
	waitForHTTP(t, addr, "/readyz", http.StatusServiceUnavailable, "the source manifest is invalid (1 problem")
	waitForHTTP(t, addr, "/metrics", http.StatusOK, "sdp_sync_in_sync 0")
	if got, _ := os.ReadFile(target); !bytes.Equal(got, good) {
		t.Errorf("host file changed to an invalid manifest:\n%s", got)
	}

	code, logs := stop()
	if code != exitOK {
		t.Errorf("exit %d, want 0\n%s", code, logs)
	}
	for _, want := range []string{"validating with this binary's own schema", "wrote the host manifest",
		`problem="` + source + `:`, "resources[0].count", "shut down cleanly"} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
}

// The node's binary decides: a validator that refuses (an older node
// binary, here a script, set by SDP_VALIDATE_WITH) keeps a manifest this
// binary accepts off the host.
func TestSyncCommandWithTheNodesValidator(t *testing.T) {
	unsetEnv(t, "SDP_MANIFEST", "SDP_SYNC_TO", "SDP_VALIDATE_WITH", "SDP_LISTEN", "SDP_POLL")
	old := writeFile(t, t.TempDir(), "old-node", "#!/bin/sh\ncat >/dev/null\necho '<stdin>:6:5: resources[0].newField: unknown field' >&2\nexit 1\n")
	if err := os.Chmod(old, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SDP_VALIDATE_WITH", old)
	target := filepath.Join(t.TempDir(), "manifest.yaml")
	addr := freeAddress(t)

	stop := startCommand(t, "sync", "--manifest", exampleManifest, "--to", target, "--listen", addr).stop
	waitForHTTP(t, addr, "/metrics", http.StatusOK, `sdp_sync_total{result="invalid"} 1`)
	waitForHTTP(t, addr, "/readyz", http.StatusServiceUnavailable, "invalid")
	code, logs := stop()
	if code != exitOK {
		t.Errorf("exit %d\n%s", code, logs)
	}
	if _, err := os.Stat(target); !os.IsNotExist(err) {
		t.Errorf("host file written although the node's binary refused it: %v", err)
	}
	if want := "resources[0].newField: unknown field"; !strings.Contains(logs, want) {
		t.Errorf("log lacks %q:\n%s", want, logs)
	}
}

// waitForHTTP asks addr for path until it answers code with a body
// containing want, and returns that body.
func waitForHTTP(t *testing.T, addr, path string, code int, want string) string {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(hangTimeout)
	var last string
	for {
		resp, err := client.Get("http://" + addr + path)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			last = resp.Status + "\n" + string(body)
			if resp.StatusCode == code && strings.Contains(string(body), want) {
				return string(body)
			}
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never answered %d with %q; last:\n%s", path, code, want, last)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// sync --once, as a node image or cloud-init step runs it: --from names
// the manifest; exit 0 once the host file holds it (written, then
// unchanged); exit 1, nothing written, when the node's binary refuses it.
func TestSyncOnce(t *testing.T) {
	unsetEnv(t, "SDP_MANIFEST", "SDP_SYNC_TO", "SDP_VALIDATE_WITH", "SDP_LISTEN", "SDP_POLL")
	want, err := os.ReadFile(exampleManifest)
	if err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(t.TempDir(), "manifest.yaml")
	for i := range 2 {
		code, stdout, stderr := runMain(t, "sync", "--once", "--from", exampleManifest, "--to", target, "--validate-with", "")
		if code != exitOK {
			t.Fatalf("run %d: exit %d\n%s%s", i, code, stdout, stderr)
		}
		if got, err := os.ReadFile(target); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("run %d: host file %v:\n%s", i, err, got)
		}
	}

	refusing := writeFile(t, t.TempDir(), "old-node", "#!/bin/sh\ncat >/dev/null\necho '<stdin>:6:5: resources[0].newField: unknown field' >&2\nexit 1\n")
	if err := os.Chmod(refusing, 0o755); err != nil {
		t.Fatal(err)
	}
	fresh := filepath.Join(t.TempDir(), "manifest.yaml")
	code, _, stderr := runMain(t, "sync", "--once", exampleManifest, "--to", fresh, "--validate-with", refusing)
	if code != exitFailure || !strings.Contains(stderr, "the host file does not hold the manifest") || !strings.Contains(stderr, "newField") {
		t.Errorf("exit %d, want %d with the reason and the problem:\n%s", code, exitFailure, stderr)
	}
	if _, err := os.Stat(fresh); !os.IsNotExist(err) {
		t.Errorf("host file written although the node's binary refused it: %v", err)
	}
}
