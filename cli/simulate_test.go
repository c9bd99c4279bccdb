package cli

import (
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"simple-device-plugin/manifest"
	"simple-device-plugin/simulate"
)

const simManifest = `apiVersion: simple-device-plugin/v1alpha1
kind: Manifest
resources:
  - name: example.com/fpga
    count: 4
    env:
      FPGA_IDS: '{{ join .IDs "," }}'
      NODE: '{{ .Node }}'
  - name: example.com/seat
    ids: [a, b, c, d]
    mounts:
      - {hostPath: "/srv/{{ .ID }}", containerPath: "/data/{{ .ID }}", perDevice: true}
  - name: example.com/edge
    count: 1
    nodes: ["edge-*"]
    mounts:
      - {hostPath: /srv/edge, containerPath: /data/d} # validation tries a, b, c only

`

func TestSimulateCommand(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, dir, "good.yaml", simManifest)
	bad := writeFile(t, dir, "bad.yaml", strings.Replace(simManifest, "count: 4", "count: 0", 1))
	missing := filepath.Join(dir, "missing.yaml")

	tests := []struct {
		name       string
		args       []string
		env        map[string]string
		wantCode   int
		wantStdout []string // each must appear
		wantStderr []string // each must appear; nil means stderr must be empty
	}{
		{
			name:       "no request: one device of every resource, as text",
			args:       []string{"simulate", "--manifest", good},
			wantStdout: []string{"Each container asks for one device of every resource (no --request).", "container-0 gets:", "FPGA_IDS=fpga-0", "/data/a  <- /srv/a", "example.com/edge  nodes: edge-*"},
		},
		{
			name:       "request and containers",
			args:       []string{"simulate", "--manifest", good, "--request", "example.com/fpga=2,example.com/seat=1", "--containers", "2"},
			wantStdout: []string{"Each container asks for example.com/fpga=2,example.com/seat=1.", "container-1 gets:", "FPGA_IDS=fpga-2,fpga-3", "/data/b  <- /srv/b"},
		},
		{
			name:       "node name from the flag",
			args:       []string{"simulate", "--manifest", good, "--node-name", "edge-1", "--request", "example.com/edge=1"},
			wantStdout: []string{`node "edge-1"`, "/data/d  <- /srv/edge"},
		},
		{
			name:       "node name from NODE_NAME, as in the DaemonSet",
			args:       []string{"simulate", "--manifest", good, "--request", "example.com/fpga=1"},
			env:        map[string]string{"NODE_NAME": "edge-2"},
			wantStdout: []string{`node "edge-2"`, "NODE=edge-2", "example.com_edge.sock"},
		},
		{
			name:       "flags from SDP_* variables",
			args:       []string{"simulate"},
			env:        map[string]string{"SDP_MANIFEST": good, "SDP_REQUEST": "example.com/seat=2", "SDP_OUTPUT": "json"},
			wantStdout: []string{`"example.com/seat": [`, `"containerPath": "/data/b"`},
		},
		{
			name:       "a flag wins over its variable",
			args:       []string{"simulate", "--manifest", good, "--request", "example.com/fpga=3"},
			env:        map[string]string{"SDP_REQUEST": "example.com/seat=2"},
			wantStdout: []string{"FPGA_IDS=fpga-0,fpga-1,fpga-2"},
		},
		{
			name:       "a clash is a warning in the report, and on stderr for scripts",
			args:       []string{"simulate", "--manifest", good, "--node-name", "edge-1", "--request", "example.com/seat=4,example.com/edge=1", "--output", "yaml"},
			wantStdout: []string{"warnings:", "- mount /data/d is /srv/edge from example.com/edge and /srv/d from example.com/seat"},
			wantStderr: []string{"warning: container-0: mount /data/d is /srv/edge from example.com/edge and /srv/d from example.com/seat; the kubelet keeps one of them at random\n"},
		},
		{
			name:       "unknown resource",
			args:       []string{"simulate", "--manifest", good, "--request", "example.com/gpu=1"},
			wantCode:   exitFailure,
			wantStderr: []string{"Error: the manifest has no resource example.com/gpu; it has example.com/fpga, example.com/seat, example.com/edge\n"},
		},
		{
			name:       "resource not served on the node",
			args:       []string{"simulate", "--manifest", good, "--request", "example.com/edge=1", "--node-name", "core-1"},
			wantCode:   exitFailure,
			wantStderr: []string{`Error: example.com/edge is not served on node "core-1"`},
		},
		{
			name:       "more devices than exist",
			args:       []string{"simulate", "--manifest", good, "--request", "example.com/seat=5"},
			wantCode:   exitFailure,
			wantStderr: []string{"Error: example.com/seat: the request needs 5 devices but the manifest declares only 4; the kubelet would refuse the pod\n"},
		},
		{
			name:       "more devices than exist across containers",
			args:       []string{"simulate", "--manifest", good, "--request", "example.com/fpga=2", "--containers", "3"},
			wantCode:   exitFailure,
			wantStderr: []string{"Error: example.com/fpga: the request needs 6 devices (3 containers × 2) but the manifest declares only 4; the kubelet would refuse the pod\n"},
		},
		{
			name:       "invalid manifest: every problem with its path",
			args:       []string{"simulate", "--manifest", bad},
			wantCode:   exitFailure,
			wantStderr: []string{bad + " is invalid (1 problem):\n", bad + ":5:12: resources[0].count: must be at least 1 (got 0)\n"},
		},
		{
			name:       "manifest missing",
			args:       []string{"simulate", "--manifest", missing},
			wantCode:   exitFailure,
			wantStderr: []string{"Error: read the manifest: open " + missing + ": no such file or directory\n"},
		},
		{
			name:       "malformed request",
			args:       []string{"simulate", "--manifest", good, "--request", "example.com/fpga"},
			wantCode:   exitUsage,
			wantStderr: []string{`Error: --request: request "example.com/fpga": write <resource>=<count>, for example example.com/fpga=2`},
		},
		{
			name:       "zero devices",
			args:       []string{"simulate", "--manifest", good, "--request", "example.com/fpga=0"},
			wantCode:   exitUsage,
			wantStderr: []string{"the count must be a whole number of at least 1"},
		},
		{
			name:       "no manifest",
			args:       []string{"simulate"},
			wantCode:   exitUsage,
			wantStderr: []string{"Error: no manifest: simple-device-plugin simulate FILE (or --manifest FILE, or SDP_MANIFEST); - reads standard input\n"},
		},
		{
			name:       "no containers",
			args:       []string{"simulate", "--manifest", good, "--containers", "0"},
			wantCode:   exitUsage,
			wantStderr: []string{`Error: invalid argument "0" for "--containers" flag: must be a whole number from 1 to 1000`},
		},
		{
			name:       "unknown output",
			args:       []string{"simulate", "--manifest", good, "--output", "xml"},
			wantCode:   exitUsage,
			wantStderr: []string{`Error: invalid argument "xml" for "-o, --output" flag: must be one of text, yaml, json`},
		},
		{
			name:       "unknown flag",
			args:       []string{"simulate", "--manifest", good, "--pod", "x.yaml"},
			wantCode:   exitUsage,
			wantStderr: []string{"Error: unknown flag: --pod\nSee 'simple-device-plugin simulate --help'."},
		},
		{
			name:       "stray argument",
			args:       []string{"simulate", good, "extra"},
			wantCode:   exitUsage,
			wantStderr: []string{`Error: one manifest at a time, got 2 arguments: ` + good + ` extra`},
		},
		{
			name:       "a file and --manifest",
			args:       []string{"simulate", "--manifest", good, "extra"},
			wantCode:   exitUsage,
			wantStderr: []string{`Error: give the manifest once: simple-device-plugin simulate FILE or --manifest FILE, not both`},
		},
		{
			name:       "a bad SDP_ variable",
			args:       []string{"simulate", "--manifest", good},
			env:        map[string]string{"SDP_CONTAINERS": "many"},
			wantCode:   exitUsage,
			wantStderr: []string{`SDP_CONTAINERS="many" (for --containers): must be a whole number from 1 to 1000`},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Every variable simulate reads, cleared unless the case sets it.
			unsetEnv(t, "NODE_NAME", "SDP_MANIFEST", "SDP_REQUEST", "SDP_CONTAINERS", "SDP_NODE_NAME", "SDP_OUTPUT", "SDP_LOG_FORMAT", "SDP_LOG_LEVEL")
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			code, stdout, stderr := runMain(t, tc.args...)
			checkRun(t, code, stdout, stderr, tc.wantCode, tc.wantStdout, tc.wantStderr)
			if tc.wantStderr == nil && stderr != "" {
				t.Errorf("stderr should be empty:\n%s", stderr)
			}
			if tc.wantCode != exitOK && stdout != "" {
				t.Errorf("a failed run printed a report:\n%s", stdout)
			}
		})
	}
}

// TestSimulateJSONForScripts reads the json output as a script would.
func TestSimulateJSONForScripts(t *testing.T) {
	path := writeFile(t, t.TempDir(), "m.yaml", simManifest)
	code, stdout, stderr := runMain(t, "simulate", "--manifest", path, "--request", "example.com/fpga=2", "--containers", "2", "--output", "json", "--node-name", "n1")
	if code != exitOK || stderr != "" {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	var r simulate.Report
	dec := json.NewDecoder(strings.NewReader(stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		t.Fatalf("json output does not decode into simulate.Report: %v\n%s", err, stdout)
	}
	if r.Node != "n1" || len(r.Resources) != 2 || len(r.Containers) != 2 {
		t.Fatalf("report = %+v", r)
	}
	got := [][]string{r.Containers[0].Devices["example.com/fpga"], r.Containers[1].Devices["example.com/fpga"]}
	if !slices.Equal(got[0], []string{"fpga-0", "fpga-1"}) || !slices.Equal(got[1], []string{"fpga-2", "fpga-3"}) {
		t.Errorf("devices per container = %v", got)
	}
	if r.Containers[1].Env["FPGA_IDS"] != "fpga-2,fpga-3" || r.Containers[1].Env["NODE"] != "n1" {
		t.Errorf("container-1 env = %v", r.Containers[1].Env)
	}
}

// TestSimulateEveryExample runs simulate on every example manifest (and
// the one deploy/ installs), in every output format, and every example
// pod's containers against the manifest that declares what they ask for.
func TestSimulateEveryExample(t *testing.T) {
	var files []string
	for _, pattern := range []string{"examples/*.yaml", "deploy/*.yaml", "deploy/examples/*.yaml"} {
		matches, err := filepath.Glob(filepath.Join("..", pattern))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, matches...)
	}
	if len(files) == 0 {
		t.Fatal("no examples found")
	}
	manifests := map[string]*manifest.Manifest{}
	var pods []string
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, doc := range yamlDocuments(data) {
			var head struct{ Kind string }
			if err := yaml.Unmarshal(doc, &head); err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			switch head.Kind {
			case manifest.Kind:
				m, err := manifest.Load(file)
				if err != nil {
					t.Fatalf("%s: %v", file, err)
				}
				manifests[file] = m
			case "Pod":
				pods = append(pods, file)
			}
		}
	}
	if _, ok := manifests[exampleManifest]; !ok {
		t.Fatal("examples/manifest.yaml, the README's first command, is not a manifest")
	}

	for file, m := range manifests {
		t.Run(file, func(t *testing.T) {
			t.Parallel()
			for _, format := range []string{"text", "yaml", "json"} {
				code, stdout, stderr := runMain(t, "simulate", "--manifest", file, "--output", format, "--node-name", "")
				if code != exitOK || stderr != "" {
					t.Fatalf("simulate --output %s: exit %d\n%s", format, code, stderr)
				}
				if format != "json" {
					continue
				}
				var r simulate.Report
				if err := json.Unmarshal([]byte(stdout), &r); err != nil {
					t.Fatal(err)
				}
				served, _ := m.ForNode("")
				if len(r.Resources)+len(r.DRA) != len(served) {
					t.Errorf("%d resources registered and %d through DRA, want the %d served without a node name", len(r.Resources), len(r.DRA), len(served))
				}
				for _, c := range r.Containers {
					if len(c.Devices)+len(r.NotRequested) != len(served) {
						t.Errorf("%s got devices of %d resources, want one of each of %d served (less %v without a healthy device)", c.Name, len(c.Devices), len(served), r.NotRequested)
					}
				}
			}
		})
	}

	for _, file := range pods {
		t.Run(file, func(t *testing.T) {
			t.Parallel()
			containers := podRequests(t, file)
			if len(containers) == 0 {
				t.Fatal("the pod asks for no extended resource")
			}
			total := map[string]int{}
			for _, c := range containers {
				for res, n := range c.request {
					total[res] += n
				}
			}
			mf := manifestDeclaring(manifests, total)
			if mf == "" {
				t.Fatalf("no example manifest declares every resource the pod asks for: %v", total)
			}
			for res, n := range total {
				if have := len(manifests[mf].Resource(res).IDs); n > have {
					t.Errorf("the pod asks for %d of %s in all; %s declares %d", n, res, mf, have)
				}
			}
			for _, c := range containers {
				var parts []string
				for _, res := range slices.Sorted(maps.Keys(c.request)) {
					parts = append(parts, res+"="+strconv.Itoa(c.request[res]))
				}
				code, stdout, stderr := runMain(t, "simulate", "--manifest", mf, "--request", strings.Join(parts, ","), "--node-name", "")
				if code != exitOK || stderr != "" {
					t.Errorf("container %s: simulate --manifest %s --request %s: exit %d\n%s", c.name, mf, strings.Join(parts, ","), code, stderr)
				}
				if strings.Contains(stdout, "warnings:") {
					t.Errorf("container %s gets conflicting settings:\n%s", c.name, stdout)
				}
			}
		})
	}
}

type containerRequest struct {
	name    string
	request map[string]int
}

// podRequests reads the extended resources each container of a pod asks for.
func podRequests(t *testing.T, file string) []containerRequest {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	type container struct {
		Name      string
		Resources struct{ Limits map[string]any }
	}
	var out []containerRequest
	for _, doc := range yamlDocuments(data) {
		var pod struct {
			Kind string
			Spec struct{ InitContainers, Containers []container }
		}
		if err := yaml.Unmarshal(doc, &pod); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if pod.Kind != "Pod" {
			continue
		}
		for _, c := range append(pod.Spec.InitContainers, pod.Spec.Containers...) {
			req := map[string]int{}
			for res, v := range c.Resources.Limits {
				if !strings.Contains(res, "/") {
					continue // cpu, memory
				}
				n, err := strconv.Atoi(strings.Trim(strings.TrimSpace(toString(v)), `"`))
				if err != nil {
					t.Fatalf("%s: container %s: %s: %v is not a whole number", file, c.Name, res, v)
				}
				req[res] = n
			}
			if len(req) > 0 {
				out = append(out, containerRequest{c.Name, req})
			}
		}
	}
	return out
}

func manifestDeclaring(manifests map[string]*manifest.Manifest, request map[string]int) string {
	for _, file := range slices.Sorted(maps.Keys(manifests)) {
		all := true
		for res := range request {
			all = all && manifests[file].Resource(res) != nil
		}
		if all {
			return file
		}
	}
	return ""
}

// yamlDocuments splits a multi-document YAML file.
func yamlDocuments(data []byte) [][]byte {
	var docs [][]byte
	for _, doc := range strings.Split("\n"+string(data), "\n---") {
		if strings.TrimSpace(doc) != "" {
			docs = append(docs, []byte(doc))
		}
	}
	return docs
}

func toString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
