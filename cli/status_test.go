package cli

import (
	"context"
	"encoding/json"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	api "k8s.io/kubelet/pkg/apis/podresources/v1"
	"sigs.k8s.io/yaml"

	"simple-device-plugin/host"
	"simple-device-plugin/internal/kubeletsim"
)

// freeAddress is a loopback address nothing listens on right now.
func freeAddress(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	return lis.Addr().String()
}

// status asks a running host (the run command, on stand-ins for the
// kubelet's registration and PodResources APIs) who holds what.
func TestStatusCommand(t *testing.T) {
	dir, k := startStandInKubelet(t)
	podRes, err := kubeletsim.StartPodResources(filepath.Join(dir, "pod-resources.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer podRes.Stop()
	podRes.Set(&api.ListPodResourcesResponse{PodResources: []*api.PodResources{
		kubeletsim.Pod("default", "mixed", map[string]map[string][]string{"main": {"example.com/license-seat": {"seat-b"}}}),
	}})
	addr := freeAddress(t)

	ctx, cancel := context.WithTimeout(t.Context(), hangTimeout)
	defer cancel()
	run := startCommand(t, "run", exampleManifest, "--device-plugin-dir", dir, "--registration", "kubelet-socket",
		"--listen", addr, "--node-name", "n1", "--cdi-spec-dir", t.TempDir(), "--cdi-registry-dirs", "",
		"--pod-resources-socket", filepath.Join(dir, "pod-resources.sock"), "--pod-resources-period", "1s")
	stderr := run.stderr
	defer func() {
		if code, log := run.stop(); code != exitOK {
			t.Errorf("run: exit %d\n%s", code, log)
		}
	}()
	if err := k.WaitRegistered(ctx, []string{"example.com/license-seat"}); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}

	// The first read comes at start, the next within the period.
	var stdout string
	deadline := time.Now().Add(hangTimeout)
	for !strings.Contains(stdout, "seat-b") || !strings.Contains(stdout, "default/mixed") {
		if time.Now().After(deadline) {
			t.Fatalf("status never showed seat-b held:\n%s", stdout)
		}
		var code int
		var errOut string
		code, stdout, errOut = runMain(t, "status", "--listen", addr)
		if code != exitOK {
			t.Fatalf("status: exit %d\n%s", code, errOut)
		}
	}
	rows := map[string]bool{}
	for _, line := range strings.Split(stdout, "\n") {
		rows[strings.Join(strings.Fields(line), " ")] = true
	}
	for _, want := range []string{
		"RESOURCE DEVICE HEALTH POD CONTAINER",
		"example.com/license-seat seat-a Healthy - -",
		"example.com/license-seat seat-b Healthy default/mixed main",
		"example.com/vaccel-share vaccel-share-15 Healthy - -",
	} {
		if !rows[want] {
			t.Errorf("status table lacks the row %q:\n%s", want, stdout)
		}
	}

	for _, format := range []string{"json", "yaml"} {
		code, out, errOut := runMain(t, "status", "--listen", addr, "-o", format)
		var a host.Allocations
		if format == "json" {
			err = json.Unmarshal([]byte(out), &a)
		} else {
			err = yaml.Unmarshal([]byte(out), &a)
		}
		if code != exitOK || err != nil || a.State != "ok" || len(a.Resources) != 3 {
			t.Errorf("status -o %s: exit %d, %v, %+v\n%s%s", format, code, err, a, out, errOut)
		}
	}
}

func TestStatusFailures(t *testing.T) {
	addr := freeAddress(t)
	tests := []struct {
		name       string
		args       []string
		code       int
		wantStderr string
	}{
		{"nobody listening", []string{"status", "--listen", addr}, exitFailure, "no host answers at http://" + addr + "/allocations"},
		{"empty address", []string{"status", "--listen", ""}, exitUsage, "--listen is empty"},
		{"bad address", []string{"status", "--listen", "localhost"}, exitUsage, "--listen"},
		{"bad output", []string{"status", "-o", "xml"}, exitUsage, "xml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runMain(t, tt.args...)
			checkRun(t, code, stdout, stderr, tt.code, nil, []string{tt.wantStderr})
		})
	}
}
