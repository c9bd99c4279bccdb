package cluster

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// These tests need no cluster: they check that deploy/ is consistent — the
// kustomize base and the Helm chart render the same objects, and every
// copy of the manifest is the example manifest and valid.

const chartDir = repoRoot + "/deploy/helm/simple-device-plugin"

func TestDeployManifestIsTheExample(t *testing.T) {
	example := readYAML(t, repoRoot+"/examples/manifest.yaml")
	base := readYAML(t, repoRoot+"/deploy/manifest.yaml")
	if !reflect.DeepEqual(example, base) {
		t.Errorf("deploy/manifest.yaml differs from examples/manifest.yaml: copy it again")
	}
	values := readYAML(t, chartDir+"/values.yaml")
	if !reflect.DeepEqual(values["manifest"], base) {
		t.Errorf("the chart's values.manifest differs from deploy/manifest.yaml")
	}
}

func TestDeployManifestValidates(t *testing.T) {
	bin, err := filepath.Abs(repoRoot + "/bin/simple-device-plugin")
	if err != nil {
		t.Fatal(err)
	}
	_, err = os.Stat(bin)
	require(t, err == nil, bin+" not built (make build)")
	mustRun(context.Background(), t, bin, "validate", repoRoot+"/deploy/manifest.yaml")
}

func TestHelmLint(t *testing.T) {
	helm := requireBin(t, "helm")
	out := mustRun(context.Background(), t, helm, "lint", "--strict", chartDir)
	t.Log(out)
}

// TestHelmRendersTheKustomizeObjects compares `helm template` with
// `kubectl kustomize deploy/`: the same ServiceAccount, ConfigMap and
// DaemonSet (names, namespace, pod spec, manifest), labels aside. The chart
// has no Namespace: Helm installs into --namespace.
func TestHelmRendersTheKustomizeObjects(t *testing.T) {
	helm, kubectl := requireBin(t, "helm"), requireBin(t, "kubectl")
	ctx := context.Background()
	helmOut := mustRun(ctx, t, helm, "template", "simple-device-plugin", chartDir, "--namespace", "simple-device-plugin")
	kustOut := mustRun(ctx, t, kubectl, "kustomize", repoRoot+"/deploy")
	fromHelm, fromKust := byKindName(t, helmOut), byKindName(t, kustOut)

	for _, key := range []string{"ServiceAccount/simple-device-plugin", "ConfigMap/simple-device-plugin", "DaemonSet/simple-device-plugin"} {
		h, k := fromHelm[key], fromKust[key]
		if h == nil || k == nil {
			t.Errorf("%s: rendered by helm %v, by kustomize %v", key, h != nil, k != nil)
			continue
		}
		if h.GetNamespace() != k.GetNamespace() {
			t.Errorf("%s: namespace %q (helm) vs %q (kustomize)", key, h.GetNamespace(), k.GetNamespace())
		}
		switch h.GetKind() {
		case "ServiceAccount":
			equalField(t, key, h, k, "automountServiceAccountToken")
		case "ConfigMap":
			hm, _, _ := unstructured.NestedString(h.Object, "data", "manifest.yaml")
			km, _, _ := unstructured.NestedString(k.Object, "data", "manifest.yaml")
			var hv, kv any
			if err := yaml.Unmarshal([]byte(hm), &hv); err != nil {
				t.Fatalf("helm's manifest.yaml: %v", err)
			}
			if err := yaml.Unmarshal([]byte(km), &kv); err != nil {
				t.Fatalf("kustomize's manifest.yaml: %v", err)
			}
			if !reflect.DeepEqual(hv, kv) {
				t.Errorf("ConfigMap manifest.yaml differs:\nhelm:\n%s\nkustomize:\n%s", hm, km)
			}
		case "DaemonSet":
			equalField(t, key, h, k, "spec", "updateStrategy")
			// The pod spec whole; the pod template's labels differ by design
			// (Helm's standard labels), so they are left out.
			equalField(t, key, h, k, "spec", "template", "spec")
		}
	}
	if len(fromHelm) != 3 {
		t.Errorf("helm rendered %d objects, want 3: %v", len(fromHelm), keys(fromHelm))
	}
	if fromKust["Namespace/simple-device-plugin"] == nil || len(fromKust) != 4 {
		t.Errorf("kustomize rendered %v, want the three and the Namespace", keys(fromKust))
	}
}

// TestHelmManifestValue: a manifest given as a value ends up, whole, in the
// ConfigMap.
func TestHelmManifestValue(t *testing.T) {
	helm := requireBin(t, "helm")
	values := filepath.Join(t.TempDir(), "values.yaml")
	const manifest = `manifest:
  apiVersion: simple-device-plugin/v1alpha1
  kind: Manifest
  resources:
    - name: example.com/widget
      count: 3
`
	if err := os.WriteFile(values, []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	out := mustRun(context.Background(), t, helm, "template", "sdp", chartDir, "-f", values, "--set", "image.tag=v9")
	objs := byKindName(t, out)
	cm := objs["ConfigMap/sdp-simple-device-plugin"]
	if cm == nil {
		t.Fatalf("no ConfigMap sdp-simple-device-plugin in %v", keys(objs))
	}
	got, _, _ := unstructured.NestedString(cm.Object, "data", "manifest.yaml")
	if !strings.Contains(got, "example.com/widget") || strings.Contains(got, "example.com/fpga") {
		t.Errorf("ConfigMap manifest.yaml = %q, want only the widget", got)
	}
	ds := objs["DaemonSet/sdp-simple-device-plugin"]
	containers, _, _ := unstructured.NestedSlice(ds.Object, "spec", "template", "spec", "containers")
	if image := containers[0].(map[string]any)["image"]; image != "simple-device-plugin:v9" {
		t.Errorf("image = %v, want simple-device-plugin:v9", image)
	}
}

func equalField(t *testing.T, key string, a, b *unstructured.Unstructured, path ...string) {
	t.Helper()
	av, _, _ := unstructured.NestedFieldNoCopy(a.Object, path...)
	bv, _, _ := unstructured.NestedFieldNoCopy(b.Object, path...)
	if !reflect.DeepEqual(av, bv) {
		ay, _ := yaml.Marshal(av)
		by, _ := yaml.Marshal(bv)
		t.Errorf("%s .%s differs:\nhelm:\n%s\nkustomize:\n%s", key, strings.Join(path, "."), ay, by)
	}
}

func readYAML(t *testing.T, path string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := yaml.Unmarshal(data, &v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return v
}

// byKindName splits a YAML stream into objects keyed "Kind/name".
func byKindName(t *testing.T, stream string) map[string]*unstructured.Unstructured {
	t.Helper()
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(stream), 4096)
	out := map[string]*unstructured.Unstructured{}
	for {
		var obj map[string]any
		err := dec.Decode(&obj)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		if obj == nil {
			continue
		}
		u := &unstructured.Unstructured{Object: obj}
		out[u.GetKind()+"/"+u.GetName()] = u
	}
}

func keys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}
