package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"simple-device-plugin/e2e/cluster/internal/chartdoc"
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
	for _, mode := range []string{"daemonset", "node-service"} {
		t.Run(mode, func(t *testing.T) {
			out := mustRun(context.Background(), t, helm, "lint", "--strict", chartDir, "--set", "mode="+mode)
			t.Log(out)
		})
	}
}

// TestDeployNodeServiceSharesTheBase: deploy/node-service cannot include
// deploy/ (kustomize refuses a kustomization that includes its parent
// dir), so it holds copies of the base's files for the Namespace, the
// ServiceAccount and the ConfigMap: the same files, byte for byte.
func TestDeployNodeServiceSharesTheBase(t *testing.T) {
	for _, name := range []string{"namespace.yaml", "serviceaccount.yaml", "manifest.yaml"} {
		base, err := os.ReadFile(repoRoot + "/deploy/" + name)
		if err != nil {
			t.Fatal(err)
		}
		copied, err := os.ReadFile(repoRoot + "/deploy/node-service/" + name)
		if err != nil {
			t.Fatal(err)
		}
		if string(base) != string(copied) {
			t.Errorf("deploy/node-service/%s differs from deploy/%s: copy it again", name, name)
		}
	}
}

// TestHelmRendersTheKustomizeObjects compares `helm template` with
// `kubectl kustomize deploy/`: the same ServiceAccount, ConfigMap and
// DaemonSet (names, namespace, pod spec, manifest), and the same objects
// DRA needs (ClusterRole, ClusterRoleBinding, ValidatingAdmissionPolicy and
// its binding: rules, subjects, policy), labels aside. The chart has no
// Namespace: Helm installs into --namespace. With the host's devices too:
// hostDevices.enabled against the base with the deploy/discover component,
// in an overlay as a user would write it. In node-service mode, against
// deploy/node-service: its DaemonSet in place of the plugin's, and nothing
// for DRA (the node service does not serve it).
func TestHelmRendersTheKustomizeObjects(t *testing.T) {
	helm, kubectl := requireBin(t, "helm"), requireBin(t, "kubectl")
	for _, tc := range []struct {
		name      string
		helmArgs  []string
		kustomize func(t *testing.T) string // the kustomization's directory
		daemonSet string
		dra       bool // the RBAC and admission policy rendered
	}{
		{"base", nil, func(*testing.T) string { return repoRoot + "/deploy" }, "simple-device-plugin", true},
		{"discover component", []string{"--set", "hostDevices.enabled=true"}, func(t *testing.T) string {
			return overlayOfDeploy(t, "components: [%s/discover]\n")
		}, "simple-device-plugin", true},
		{"node service", []string{"--set", "mode=node-service"}, func(*testing.T) string { return repoRoot + "/deploy/node-service" }, "simple-device-plugin-node", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			helmOut := mustRun(ctx, t, helm, append([]string{"template", "simple-device-plugin", chartDir, "--namespace", "simple-device-plugin"}, tc.helmArgs...)...)
			kustOut := mustRun(ctx, t, kubectl, "kustomize", tc.kustomize(t))
			fromHelm, fromKust := byKindName(t, helmOut), byKindName(t, kustOut)
			compareHelmAndKustomize(t, fromHelm, fromKust, tc.daemonSet, tc.dra)
			if tc.dra {
				checkDRAIdentity(t, "helm", fromHelm, tc.daemonSet)
				checkDRAIdentity(t, "kustomize", fromKust, tc.daemonSet)
			}
		})
	}
}

// overlayOfDeploy writes a kustomize overlay of deploy/ into a temporary
// directory and returns it; extra is more of its kustomization.yaml, with
// %s standing for the path of deploy/ from there (kustomize wants relative
// paths).
func overlayOfDeploy(t *testing.T, extra string) string {
	t.Helper()
	dir := t.TempDir()
	deploy, err := filepath.Abs(repoRoot + "/deploy")
	if err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(dir, deploy)
	if err != nil {
		t.Fatal(err)
	}
	kustomization := fmt.Sprintf("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [%s]\n", rel) +
		strings.ReplaceAll(extra, "%s", rel)
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(kustomization), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// The objects deploy/ and the chart (in daemonset mode, dra.enabled) add for
// DRA, by "Kind/name".
var draObjects = []string{
	"ClusterRole/simple-device-plugin",
	"ClusterRoleBinding/simple-device-plugin",
	"ValidatingAdmissionPolicy/simple-device-plugin-resourceslices",
	"ValidatingAdmissionPolicyBinding/simple-device-plugin-resourceslices",
}

func compareHelmAndKustomize(t *testing.T, fromHelm, fromKust map[string]*unstructured.Unstructured, daemonSet string, dra bool) {
	t.Helper()
	want := []string{"ServiceAccount/simple-device-plugin", "ConfigMap/simple-device-plugin", "DaemonSet/" + daemonSet}
	if dra {
		want = append(want, draObjects...)
	} else {
		for _, key := range draObjects {
			if fromHelm[key] != nil || fromKust[key] != nil {
				t.Errorf("%s rendered (helm %v, kustomize %v), want it in neither", key, fromHelm[key] != nil, fromKust[key] != nil)
			}
		}
	}
	for _, key := range want {
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
		case "ClusterRole":
			equalField(t, key, h, k, "rules")
		case "ClusterRoleBinding":
			equalField(t, key, h, k, "roleRef")
			equalField(t, key, h, k, "subjects")
		case "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding":
			equalField(t, key, h, k, "spec")
		}
	}
	if len(fromHelm) != len(want) {
		t.Errorf("helm rendered %d objects, want %d: %v", len(fromHelm), len(want), keys(fromHelm))
	}
	if fromKust["Namespace/simple-device-plugin"] == nil || len(fromKust) != len(want)+1 {
		t.Errorf("kustomize rendered %v, want %v and the Namespace", keys(fromKust), want)
	}
}

// checkDRAIdentity checks that the DRA objects of one rendering name one
// another and the DaemonSet's service account: the binding grants the
// ClusterRole to that account (in the DaemonSet's namespace), and the
// admission policy's binding and match condition name the policy and that
// account. A policy matching another account would hold nobody to its node.
func checkDRAIdentity(t *testing.T, how string, objs map[string]*unstructured.Unstructured, daemonSet string) {
	t.Helper()
	ds := objs["DaemonSet/"+daemonSet]
	if ds == nil {
		t.Fatalf("%s: no DaemonSet %s in %v", how, daemonSet, keys(objs))
	}
	account, _, _ := unstructured.NestedString(ds.Object, "spec", "template", "spec", "serviceAccountName")
	namespace := ds.GetNamespace()
	var role, policy *unstructured.Unstructured
	var binding, policyBinding *unstructured.Unstructured
	for _, o := range objs {
		switch o.GetKind() {
		case "ClusterRole":
			role = o
		case "ClusterRoleBinding":
			binding = o
		case "ValidatingAdmissionPolicy":
			policy = o
		case "ValidatingAdmissionPolicyBinding":
			policyBinding = o
		}
	}
	if role == nil || binding == nil || policy == nil || policyBinding == nil {
		t.Fatalf("%s: want a ClusterRole, a ClusterRoleBinding, a ValidatingAdmissionPolicy and its binding, got %v", how, keys(objs))
	}
	for _, o := range []*unstructured.Unstructured{role, binding, policy, policyBinding} {
		if o.GetNamespace() != "" {
			t.Errorf("%s: %s/%s is cluster-scoped, but has namespace %q", how, o.GetKind(), o.GetName(), o.GetNamespace())
		}
	}
	wantField(t, binding.Object, map[string]any{"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role.GetName()}, "roleRef")
	wantField(t, binding.Object, []any{map[string]any{"kind": "ServiceAccount", "name": account, "namespace": namespace}}, "subjects")
	wantField(t, policyBinding.Object, policy.GetName(), "spec", "policyName")
	conditions, _, _ := unstructured.NestedSlice(policy.Object, "spec", "matchConditions")
	wantCondition := fmt.Sprintf(`request.userInfo.username == "system:serviceaccount:%s:%s"`, namespace, account)
	if len(conditions) != 1 || conditions[0].(map[string]any)["expression"] != wantCondition {
		t.Errorf("%s: the policy's matchConditions = %v, want the one %s", how, conditions, wantCondition)
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

// exampleManifests are the manifests in examples/ (pod-*.yaml are pods).
func exampleManifests(t *testing.T) []string {
	t.Helper()
	all, err := filepath.Glob(repoRoot + "/examples/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var manifests []string
	for _, p := range all {
		if !strings.HasPrefix(filepath.Base(p), "pod-") {
			manifests = append(manifests, p)
		}
	}
	if len(manifests) < 2 {
		t.Fatalf("examples/*.yaml: found %v, want the example manifests", manifests)
	}
	return manifests
}

// TestHelmExampleManifests installs every example manifest both ways the
// chart takes one: the file's text (--set-file, kept verbatim, comments
// and all) and a mapping in a values file. Either way the ConfigMap holds
// the example. helm template renders NOTES.txt too (and fails when it
// does not render), so the notes work with both forms as well.
func TestHelmExampleManifests(t *testing.T) {
	helm := requireBin(t, "helm")
	for _, path := range exampleManifests(t) {
		t.Run(filepath.Base(path), func(t *testing.T) {
			text, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			example := readYAML(t, path)
			// A manifest that discovers the host's devices needs them mounted;
			// the chart says so rather than install a plugin that finds none.
			var hostDevices []string
			if at := discoverAt(example); at >= 0 {
				hostDevices = []string{"--set", "hostDevices.enabled=true"}
				msg := helmRefuses(t, helm, "--set-file", "manifest="+path)
				if want := fmt.Sprintf("values.manifest: resources[%d] (%s) uses discover:", at, resourceName(example, at)); !strings.Contains(msg, want) || !strings.Contains(msg, "set hostDevices.enabled=true") {
					t.Errorf("without hostDevices.enabled: want the chart's error %q telling to set it, got:\n%s", want, msg)
				}
			}
			// One served through DRA needs what dra.enabled (the default)
			// brings, and the DaemonSet: the chart says so otherwise.
			if at := draAt(example); at >= 0 {
				wantDRARefused(t, helm, at, resourceName(example, at), append([]string{"--set-file", "manifest=" + path}, hostDevices...)...)
			}

			got := configMapManifest(t, helmTemplate(t, helm, append([]string{"--set-file", "manifest=" + path}, hostDevices...)...))
			if got != string(text) {
				t.Errorf("--set-file: ConfigMap manifest.yaml is not the file as written:\n%s", got)
			}
			equalManifest(t, "--set-file", got, example)

			values, err := yaml.Marshal(map[string]any{"manifest": example})
			if err != nil {
				t.Fatal(err)
			}
			got = configMapManifest(t, helmTemplate(t, helm, append([]string{"-f", writeTemp(t, "values.yaml", string(values))}, hostDevices...)...))
			equalManifest(t, "-f values", got, example)
		})
	}
}

// discoverAt is the index of the manifest's first resource with discover:,
// or -1.
func discoverAt(manifest map[string]any) int {
	resources, _ := manifest["resources"].([]any)
	for i, r := range resources {
		if r, _ := r.(map[string]any); r["discover"] != nil {
			return i
		}
	}
	return -1
}

// draAt is the index of the manifest's first resource with api: dra, or -1.
func draAt(manifest map[string]any) int {
	resources, _ := manifest["resources"].([]any)
	for i, r := range resources {
		if r, _ := r.(map[string]any); r["api"] == "dra" {
			return i
		}
	}
	return -1
}

// wantDRARefused renders the chart with args (a manifest whose resource
// at index at, name, has api: dra) twice, with dra.enabled false and in
// node-service mode; both must fail, saying why and what to set.
func wantDRARefused(t *testing.T, helm string, at int, name string, args ...string) {
	t.Helper()
	prefix := fmt.Sprintf("values.manifest: resources[%d] (%s) has api: dra", at, name)
	for _, tc := range []struct{ set, want string }{
		{"dra.enabled=false", "set dra.enabled=true"},
		{"mode=node-service", "served in daemonset mode only"},
	} {
		msg := helmRefuses(t, helm, append(args, "--set", tc.set)...)
		if !strings.Contains(msg, prefix) || !strings.Contains(msg, tc.want) {
			t.Errorf("--set %s: want the chart's error %q ... %q, got:\n%s", tc.set, prefix, tc.want, msg)
		}
	}
}

// TestHelmDRANeedsTheDaemonSet: a manifest with an api: dra resource is
// refused, given as a file or as a mapping, where the plugin could not
// publish it: with dra.enabled false (no token, RBAC or DRA dirs) and in
// node-service mode (no credentials on the node). api: devicePlugin, said
// outright, is not.
func TestHelmDRANeedsTheDaemonSet(t *testing.T) {
	helm := requireBin(t, "helm")
	const manifest = `apiVersion: simple-device-plugin/v1alpha1
kind: Manifest
resources:
  - name: example.com/widget
    count: 2
    api: devicePlugin
  - name: example.com/gadget
    count: 4
    api: dra
    dra: {attributes: {model: virtual-gadget}}
`
	wantDRARefused(t, helm, 1, "example.com/gadget", "--set-file", "manifest="+writeTemp(t, "manifest.yaml", manifest))
	var m map[string]any
	if err := yaml.Unmarshal([]byte(manifest), &m); err != nil {
		t.Fatal(err)
	}
	values, err := yaml.Marshal(map[string]any{"manifest": m})
	if err != nil {
		t.Fatal(err)
	}
	wantDRARefused(t, helm, 1, "example.com/gadget", "-f", writeTemp(t, "values.yaml", string(values)))

	devicePluginOnly := editResources(t, manifest, func(resources []any) []any { return resources[:1] })
	for _, set := range []string{"dra.enabled=false", "mode=node-service"} {
		got := configMapManifest(t, helmTemplate(t, helm, "--set-file", "manifest="+writeTemp(t, "manifest.yaml", devicePluginOnly), "--set", set))
		if !strings.Contains(got, "api: devicePlugin") {
			t.Errorf("--set %s: ConfigMap manifest.yaml = %q, want the widget with api: devicePlugin", set, got)
		}
	}
}

func resourceName(manifest map[string]any, i int) string {
	return manifest["resources"].([]any)[i].(map[string]any)["name"].(string)
}

// TestHelmSchemaRefuses: values.schema.json refuses bad values before any
// template runs, naming the value.
func TestHelmSchemaRefuses(t *testing.T) {
	helm := requireBin(t, "helm")
	for _, tc := range []struct {
		name string
		args []string
		want string // the path helm's error names
	}{
		{"count 0", []string{"--set", "manifest.resources[0].count=0"}, "at '/manifest/resources/0/count': minimum: got 0, want 1"},
		{"count not a number", []string{"--set", "manifest.resources[0].count=four"}, "at '/manifest/resources/0/count'"},
		{"resource name without a domain", []string{"--set", "manifest.resources[0].name=fpga"}, "at '/manifest/resources/0/name'"},
		{"resource name in kubernetes.io", []string{"--set", "manifest.resources[0].name=kubernetes.io/fpga"}, "at '/manifest/resources/0/name'"},
		{"resources empty", []string{"--set-json", "manifest.resources=[]"}, "at '/manifest/resources': minItems"},
		{"unknown resource field", []string{"--set", "manifest.resources[0].name=example.com/a,manifest.resources[0].cuont=1"}, "at '/manifest/resources/0': additional properties 'cuont' not allowed"},
		{"wrong apiVersion", []string{"--set", "manifest.apiVersion=v1"}, "at '/manifest/apiVersion'"},
		{"empty ids", []string{"--set-json", `manifest.resources=[{"name":"example.com/a","ids":[]}]`}, "at '/manifest/resources/0/ids': minItems"},
		{"logLevel", []string{"--set", "logLevel=bogus"}, "at '/logLevel': value must be one of 'debug', 'info', 'warn', 'error'"},
		{"registration", []string{"--set", "registration=bogus"}, "at '/registration': value must be one of"},
		{"logFormat", []string{"--set", "logFormat=xml"}, "at '/logFormat'"},
		{"port", []string{"--set", "port=0"}, "at '/port'"},
		{"pluginsRegistryDir relative", []string{"--set", "pluginsRegistryDir=plugins_registry"}, "at '/pluginsRegistryDir'"},
		{"podResources.dir relative", []string{"--set", "podResources.dir=pod-resources"}, "at '/podResources/dir'"},
		{"podResources.enabled not a boolean", []string{"--set", "podResources.enabled=maybe"}, "at '/podResources/enabled'"},
		{"hostDevices.enabled not a boolean", []string{"--set", "hostDevices.enabled=maybe"}, "at '/hostDevices/enabled'"},
		{"hostDevices.root", []string{"--set", "hostDevices.root=/h"}, "at '/hostDevices': additional properties 'root' not allowed"},
		{"extraEnv without a name", []string{"--set", "extraEnv[0].value=x"}, "at '/extraEnv/0': missing property 'name'"},
		{"nodeSelector not strings", []string{"--set", "nodeSelector.ssd=true"}, "at '/nodeSelector/ssd'"},
		{"tolerations operator", []string{"--set", "tolerations[0].operator=Maybe"}, "at '/tolerations/0/operator'"},
		{"a misspelt value", []string{"--set", "loglevel=debug"}, "additional properties 'loglevel' not allowed"},
		{"mode", []string{"--set", "mode=systemd"}, "at '/mode': value must be one of 'daemonset', 'node-service'"},
		{"nodeService.start", []string{"--set", "nodeService.start=now"}, "at '/nodeService/start': value must be one of 'auto', 'never'"},
		{"nodeService.port", []string{"--set", "nodeService.port=0"}, "at '/nodeService/port'"},
		{"nodeService.binDir relative", []string{"--set", "nodeService.binDir=bin"}, "at '/nodeService/binDir'"},
		{"nodeService.configDir with a space", []string{"--set", "nodeService.configDir=/etc/simple device plugin"}, "at '/nodeService/configDir'"},
		{"nodeService.unitDir with a trailing slash", []string{"--set", "nodeService.unitDir=/etc/systemd/system/"}, "at '/nodeService/unitDir'"},
		{"nodeService misspelt", []string{"--set", "nodeService.bindir=/opt/bin"}, "at '/nodeService': additional properties 'bindir' not allowed"},
		{"dra.enabled not a boolean", []string{"--set", "dra.enabled=maybe"}, "at '/dra/enabled'"},
		{"dra.pluginDir relative", []string{"--set", "dra.pluginDir=plugins"}, "at '/dra/pluginDir'"},
		{"dra.registryDir relative", []string{"--set", "dra.registryDir=plugins_registry"}, "at '/dra/registryDir'"},
		{"dra misspelt", []string{"--set", "dra.pluginsDir=/var/lib/kubelet/plugins"}, "at '/dra': additional properties 'pluginsDir' not allowed"},
		{"a resource's api", []string{"--set", "manifest.resources[0].api=grpc"}, "at '/manifest/resources/0/api'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg := helmRefuses(t, helm, tc.args...)
			if !strings.Contains(msg, "values don't meet the specifications of the schema") || !strings.Contains(msg, tc.want) {
				t.Errorf("helm template %s: want the schema's error naming %q, got:\n%s", strings.Join(tc.args, " "), tc.want, msg)
			}
		})
	}
}

// TestHelmStringManifestRefused: a manifest given as a string (what
// --set-file gives) escapes the schema, so the chart's templates check it
// by the same rules. Each bad manifest is refused both ways: as a string by
// the templates (with their message), as a mapping by the schema.
func TestHelmStringManifestRefused(t *testing.T) {
	helm := requireBin(t, "helm")
	const head = "apiVersion: simple-device-plugin/v1alpha1\nkind: Manifest\n"
	for _, tc := range []struct {
		name, manifest string
		want           string // the templates' message
		schema         string // the schema's, for the same manifest as a mapping ("": no such mapping)
	}{
		{"count 0", head + "resources:\n  - name: example.com/a\n    count: 0\n",
			"values.manifest: resources[0].count: must be at least 1, got 0", "/manifest/resources/0/count"},
		{"count a fraction", head + "resources:\n  - name: example.com/a\n    count: 1.5\n",
			"resources[0].count: must be a whole number, got 1.5", "/manifest/resources/0/count"},
		{"count a string", head + "resources:\n  - name: example.com/a\n    count: \"4\"\n",
			"resources[0].count: must be a whole number, got 4", "/manifest/resources/0/count"},
		{"name without a domain", head + "resources:\n  - name: fpga\n",
			`resources[0].name: "fpga" is not an extended resource name`, "/manifest/resources/0/name"},
		{"name in kubernetes.io", head + "resources:\n  - name: kubernetes.io/fpga\n",
			`resources[0].name: "kubernetes.io/fpga" is reserved`, "/manifest/resources/0/name"},
		{"name in a kubernetes.io subdomain", head + "resources:\n  - name: gpu.kubernetes.io/a\n",
			`is reserved`, "/manifest/resources/0/name"},
		{"no name", head + "resources:\n  - count: 2\n",
			"resources[0]: name is required", "missing property 'name'"},
		{"resources empty", head + "resources: []\n",
			"values.manifest: resources: must not be empty", "/manifest/resources"},
		// As a mapping, Helm merges it with the default manifest, whose
		// resources it then keeps: only the string form can lack them.
		{"no resources", head,
			"values.manifest: resources is required (fix the manifest", ""},
		{"wrong apiVersion", "apiVersion: v1\nkind: Manifest\nresources:\n  - name: example.com/a\n",
			"values.manifest: apiVersion: must be simple-device-plugin/v1alpha1, got v1", "/manifest/apiVersion"},
		{"wrong kind", "apiVersion: simple-device-plugin/v1alpha1\nkind: ConfigMap\nresources:\n  - name: example.com/a\n",
			"values.manifest: kind: must be Manifest, got ConfigMap", "/manifest/kind"},
		{"unknown field", head + "resources:\n  - name: example.com/a\n    cuont: 2\n",
			"resources[0].cuont: unknown field; the fields here are allocationPolicy, annotations,", "additional properties 'cuont' not allowed"},
		{"ids empty", head + "resources:\n  - name: example.com/a\n    ids: []\n",
			"resources[0].ids: must not be empty", "/manifest/resources/0/ids"},
		{"id with a space", head + "resources:\n  - name: example.com/a\n    ids: [\"a b\"]\n",
			`resources[0].ids[0]: "a b" is not a device ID`, "/manifest/resources/0/ids/0"},
		{"env name", head + "resources:\n  - name: example.com/a\n    count: 1\n    env: {1X: y}\n",
			`resources[0].env: "1X" is not an environment variable name`, "/manifest/resources/0/env"},
		{"env value a number", head + "resources:\n  - name: example.com/a\n    count: 1\n    env: {X: 1}\n",
			"resources[0].env[X]: must be a string, got a number", "/manifest/resources/0/env/X"},
		{"mount without a containerPath", head + "resources:\n  - name: example.com/a\n    count: 1\n    mounts: [{hostPath: /x}]\n",
			"resources[0].mounts[0]: containerPath is required", "missing property 'containerPath'"},
		{"permissions", head + "resources:\n  - name: example.com/a\n    count: 1\n    devices: [{hostPath: /dev/null, containerPath: /dev/a, permissions: rwx}]\n",
			"resources[0].devices[0].permissions: must be r, w and m", "/manifest/resources/0/devices/0/permissions"},
		{"allocationPolicy", head + "resources:\n  - name: example.com/a\n    count: 1\n    allocationPolicy: random\n",
			"resources[0].allocationPolicy: must be packed, spread or first, got random", "/manifest/resources/0/allocationPolicy"},
		{"numaNodes", head + "resources:\n  - name: example.com/a\n    count: 1\n    topology: {numaNodes: 2000}\n",
			"resources[0].topology.numaNodes: must be from 1 to 1024, got 2000", "/manifest/resources/0/topology/numaNodes"},
		{"nodeOf", head + "resources:\n  - name: example.com/a\n    ids: [x]\n    topology: {nodeOf: {x: -1}}\n",
			"resources[0].topology.nodeOf[x]: must be from 0 to 1023, got -1", "/manifest/resources/0/topology/nodeOf/x"},
		{"preStartRequired", head + "resources:\n  - name: example.com/a\n    count: 1\n    preStartRequired: \"yes\"\n",
			"resources[0].preStartRequired: must be true or false, got yes", "/manifest/resources/0/preStartRequired"},
		{"healthCheck without a path", head + "resources:\n  - name: example.com/a\n    count: 1\n    healthCheck: {interval: 5s}\n",
			"resources[0].healthCheck: path is required", "missing property 'path'"},
		{"empty node glob", head + "resources:\n  - name: example.com/a\n    count: 1\n    nodes: [\"\"]\n",
			"resources[0].nodes[0]: must not be empty", "/manifest/resources/0/nodes/0"},
		{"discover: unknown field", head + "resources:\n  - name: example.com/a\n    discover: {path: [/dev/fuse]}\n",
			"resources[0].discover.path: unknown field; the fields here are containerPath, groups, paths, permissions, share, usb", "additional properties 'path' not allowed"},
		{"discover: empty path", head + "resources:\n  - name: example.com/a\n    discover: {paths: [\"\"]}\n",
			"resources[0].discover.paths[0]: must not be empty", "/manifest/resources/0/discover/paths/0"},
		{"discover: share over 1000", head + "resources:\n  - name: example.com/a\n    discover: {paths: [/dev/fuse], share: 1001}\n",
			"resources[0].discover.share: must be from 0 to 1000, got 1001", "/manifest/resources/0/discover/share"},
		{"discover: permissions", head + "resources:\n  - name: example.com/a\n    discover: {paths: [/dev/fuse], permissions: x}\n",
			"resources[0].discover.permissions: must be r, w and m", "/manifest/resources/0/discover/permissions"},
		{"discover: USB ID unquoted", head + "resources:\n  - name: example.com/a\n    discover: {paths: [/dev/ttyUSB*], usb: [{vendor: 0403, product: \"6001\"}]}\n",
			"resources[0].discover.usb[0].vendor: must be a string, got a number", "/manifest/resources/0/discover/usb/0/vendor"},
		{"discover: USB ID of 3 digits", head + "resources:\n  - name: example.com/a\n    discover: {paths: [/dev/ttyUSB*], usb: [{vendor: \"0403\", product: \"601\"}]}\n",
			`resources[0].discover.usb[0].product: "601" is not a USB ID`, "/manifest/resources/0/discover/usb/0/product"},
		{"discover: USB without a product", head + "resources:\n  - name: example.com/a\n    discover: {paths: [/dev/ttyUSB*], usb: [{vendor: \"0403\"}]}\n",
			"resources[0].discover.usb[0]: product is required", "missing property 'product'"},
		{"discover: groups without a key", head + "resources:\n  - name: example.com/a\n    discover: {groups: {paths: [/dev/snd/controlC*]}}\n",
			"resources[0].discover.groups: key is required", "missing property 'key'"},
		{"discover: groups with no paths", head + "resources:\n  - name: example.com/a\n    discover: {groups: {key: C, paths: []}}\n",
			"resources[0].discover.groups.paths: must not be empty", "/manifest/resources/0/discover/groups/paths"},
		{"api", head + "resources:\n  - name: example.com/a\n    count: 1\n    api: grpc\n",
			"resources[0].api: must be devicePlugin or dra, got grpc", "/manifest/resources/0/api"},
		{"dra: unknown field", head + "resources:\n  - name: example.com/a\n    count: 1\n    api: dra\n    dra: {drivr: a.example.com}\n",
			"resources[0].dra.drivr: unknown field; the fields here are attributes, capacity, driver", "additional properties 'drivr' not allowed"},
		{"dra: driver not a DNS subdomain", head + "resources:\n  - name: example.com/a\n    count: 1\n    api: dra\n    dra: {driver: A_Driver}\n",
			`resources[0].dra.driver: "A_Driver" is not a DRA driver name`, "/manifest/resources/0/dra/driver"},
		{"dra: driver of 64 characters", head + "resources:\n  - name: example.com/a\n    count: 1\n    api: dra\n    dra: {driver: " + strings.Repeat("a", 52) + ".example.com}\n",
			"is 64 characters; a DRA driver name has at most 63", "/manifest/resources/0/dra/driver"},
		{"dra: attribute name", head + "resources:\n  - name: example.com/a\n    count: 1\n    api: dra\n    dra: {attributes: {1st: x}}\n",
			`resources[0].dra.attributes: "1st" is not a DRA attribute name`, "invalid propertyName '1st'"},
		{"dra: attribute a number", head + "resources:\n  - name: example.com/a\n    count: 1\n    api: dra\n    dra: {attributes: {generation: 2}}\n",
			"resources[0].dra.attributes[generation]: must be a string, got a number", "/manifest/resources/0/dra/attributes/generation"},
		{"dra: capacity a number", head + "resources:\n  - name: example.com/a\n    count: 1\n    api: dra\n    dra: {capacity: {memory: 16}}\n",
			"resources[0].dra.capacity[memory]: must be a string, got a number", "/manifest/resources/0/dra/capacity/memory"},
		{"not a mapping", "- name: example.com/a\n",
			"values.manifest does not parse as a manifest: it is not a mapping of apiVersion, kind and resources", ""},
		{"a second document", head + "resources:\n  - name: example.com/a\n    count: 1\n---\n" + head + "resources:\n  - name: example.com/b\n    count: 1\n",
			"values.manifest holds more than one YAML document; a manifest is one document", ""},
		{"broken YAML", head + "resources:\n  - name: example.com/a\n    count: 1\n   env: {A: b}\n",
			"values.manifest does not parse as a manifest: line 5: did not find expected", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := writeTemp(t, "manifest.yaml", tc.manifest)
			msg := helmRefuses(t, helm, "--set-file", "manifest="+file)
			if !strings.Contains(msg, tc.want) {
				t.Errorf("--set-file: want the templates' message %q, got:\n%s", tc.want, msg)
			}
			if tc.schema == "" {
				return
			}
			var m any
			if err := yaml.Unmarshal([]byte(tc.manifest), &m); err != nil {
				t.Fatal(err)
			}
			values, err := yaml.Marshal(map[string]any{"manifest": m})
			if err != nil {
				t.Fatal(err)
			}
			msg = helmRefuses(t, helm, "-f", writeTemp(t, "values.yaml", string(values)))
			if !strings.Contains(msg, "values don't meet the specifications of the schema") || !strings.Contains(msg, tc.schema) {
				t.Errorf("-f values (a mapping): want the schema's error naming %q, got:\n%s", tc.schema, msg)
			}
		})
	}
}

// TestHelmStringManifestAccepted: the templates' checks accept what the
// plugin accepts, at the edges.
func TestHelmStringManifestAccepted(t *testing.T) {
	helm := requireBin(t, "helm")
	const head = "apiVersion: simple-device-plugin/v1alpha1\nkind: Manifest\nresources:\n  - name: example.com/a\n"
	for _, tc := range []struct{ name, manifest string }{
		{"an empty env whose entries are commented out", head + "    count: 2\n    env:\n      # A: b\n"},
		{"a count of a million", head + "    count: 1000000\n"},
		{"NUMA node 0 and the last", head + "    ids: [d0, d1]\n    topology: {nodeOf: {d0: 0, d1: 1023}}\n"},
		{"upper-case annotation key", head + "    count: 1\n    annotations: {Example.com/Key: v}\n"},
		{"empty documents before it", "---\n# nothing here\n---\n" + head + "    count: 1\n"},
		{"an end marker and comments after it", head + "    count: 1\n...\n# the end\n"},
		{"discover: share 0 (the default) and USB IDs in upper case", head + "    discover: {paths: [/dev/ttyUSB*], share: 0, usb: [{vendor: \"04B4\", product: \"0001\", serial: \"\"}]}\n"},
		{"discover: share 1000 and groups", head + "    discover: {groups: {key: 'C(\\d+)', paths: [/dev/snd/controlC*]}, share: 1000, containerPath: \"/dev/{{ .Base }}\"}\n"},
		{"api: devicePlugin said", head + "    count: 1\n    api: devicePlugin\n"},
		{"api: dra with attributes and capacity", head + "    count: 4\n    api: dra\n    dra:\n      driver: gadget.example.com\n" +
			"      attributes: {model: virtual-gadget, generation: \"{{ .Index }}\", fast: \"true\", firmware: 1.4.2, _x: \"\"}\n" +
			"      capacity: {memory: 16Gi}\n    env:\n      GADGET_IDS: '{{ join .IDs \",\" }}'\n"},
		{"api: dra and a driver name of 63 characters", head + "    count: 1\n    api: dra\n    dra: {driver: " + strings.Repeat("a", 51) + ".example.com}\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := writeTemp(t, "manifest.yaml", tc.manifest)
			if got := configMapManifest(t, helmTemplate(t, helm, "--set-file", "manifest="+file, "--set", "hostDevices.enabled=true")); got != tc.manifest {
				t.Errorf("ConfigMap manifest.yaml:\n%s\nwant the file as written:\n%s", got, tc.manifest)
			}
		})
	}
}

// TestHelmValuesRendered: each value ends up where it should in the
// objects.
func TestHelmValuesRendered(t *testing.T) {
	helm := requireBin(t, "helm")
	for _, tc := range []struct {
		name, values string
		check        func(t *testing.T, objs map[string]*unstructured.Unstructured)
	}{
		{"defaults", "", func(t *testing.T, objs map[string]*unstructured.Unstructured) {
			c := container(t, objs, "sdp-simple-device-plugin")
			wantEnv(t, c, "SDP_LOG_LEVEL", "info")
			wantEnv(t, c, "SDP_REGISTRATION", "kubelet-socket")
			wantEnv(t, c, "SDP_PLUGINS_REGISTRY_DIR", "")
			wantField(t, podSpec(t, objs, "sdp-simple-device-plugin"), nil, "nodeSelector")
			if vs := volumes(t, objs, "sdp-simple-device-plugin"); vs["plugins-registry"] != nil {
				t.Errorf("plugins_registry mounted with registration kubelet-socket: %v", vs["plugins-registry"])
			}
			wantPodResources(t, objs, "/var/lib/kubelet/pod-resources")
			wantHostDevices(t, objs, false)
			wantDRA(t, objs, "sdp-simple-device-plugin", "/var/lib/kubelet/plugins", "/var/lib/kubelet/plugins_registry")
		}},
		{"dra disabled", "dra: {enabled: false}\n", func(t *testing.T, objs map[string]*unstructured.Unstructured) {
			wantDRA(t, objs, "sdp-simple-device-plugin", "", "")
		}},
		{"dra in other dirs", "dra: {pluginDir: /var/lib/k/plugins, registryDir: /var/lib/k/plugins_registry}\n", func(t *testing.T, objs map[string]*unstructured.Unstructured) {
			wantDRA(t, objs, "sdp-simple-device-plugin", "/var/lib/k/plugins", "/var/lib/k/plugins_registry")
		}},
		{"dra with a service account of another name", "serviceAccount: {name: devices}\n", func(t *testing.T, objs map[string]*unstructured.Unstructured) {
			if objs["ServiceAccount/devices"] == nil {
				t.Errorf("no ServiceAccount/devices in %v", keys(objs))
			}
			wantField(t, podSpec(t, objs, "sdp-simple-device-plugin"), "devices", "serviceAccountName")
			checkDRAIdentity(t, "helm", objs, "sdp-simple-device-plugin")
		}},
		{"hostDevices enabled", "hostDevices: {enabled: true}\n", func(t *testing.T, objs map[string]*unstructured.Unstructured) {
			wantHostDevices(t, objs, true)
		}},
		{"podResources in another directory", "podResources: {dir: /var/lib/k/pod-resources/}\n", func(t *testing.T, objs map[string]*unstructured.Unstructured) {
			wantPodResources(t, objs, "/var/lib/k/pod-resources/")
		}},
		{"podResources disabled", "podResources: {enabled: false}\n", func(t *testing.T, objs map[string]*unstructured.Unstructured) {
			wantPodResources(t, objs, "")
		}},
		{"nameOverride", "nameOverride: sdpx\n", func(t *testing.T, objs map[string]*unstructured.Unstructured) {
			for _, key := range []string{"ServiceAccount/sdp-sdpx", "ConfigMap/sdp-sdpx", "DaemonSet/sdp-sdpx"} {
				if objs[key] == nil {
					t.Errorf("no %s in %v", key, keys(objs))
				}
			}
			ds := objs["DaemonSet/sdp-sdpx"]
			wantField(t, ds.Object, "sdpx", "metadata", "labels", "app.kubernetes.io/name")
			wantField(t, ds.Object, "sdpx", "spec", "selector", "matchLabels", "app.kubernetes.io/name")
			wantField(t, ds.Object, "sdpx", "spec", "template", "metadata", "labels", "app.kubernetes.io/name")
		}},
		{"fullnameOverride", "fullnameOverride: plugins\n", func(t *testing.T, objs map[string]*unstructured.Unstructured) {
			for _, key := range []string{"ServiceAccount/plugins", "ConfigMap/plugins", "DaemonSet/plugins"} {
				if objs[key] == nil {
					t.Errorf("no %s in %v", key, keys(objs))
				}
			}
			spec := podSpec(t, objs, "plugins")
			wantField(t, spec, "plugins", "serviceAccountName")
			wantField(t, volumes(t, objs, "plugins")["manifest"], "plugins", "configMap", "name")
		}},
		{"logLevel and logFormat", "logLevel: debug\nlogFormat: text\n", func(t *testing.T, objs map[string]*unstructured.Unstructured) {
			c := container(t, objs, "sdp-simple-device-plugin")
			wantEnv(t, c, "SDP_LOG_LEVEL", "debug")
			wantEnv(t, c, "SDP_LOG_FORMAT", "text")
		}},
		// The plugin watcher's directory, which DRA mounts too: once.
		{"registration plugins-registry", "registration: plugins-registry\n", func(t *testing.T, objs map[string]*unstructured.Unstructured) {
			wantPluginsRegistry(t, objs, "plugins-registry", "/var/lib/kubelet/plugins_registry")
			wantDRA(t, objs, "sdp-simple-device-plugin", "/var/lib/kubelet/plugins", "/var/lib/kubelet/plugins_registry")
		}},
		{"registration plugins-registry without dra", "registration: plugins-registry\ndra: {enabled: false}\n", func(t *testing.T, objs map[string]*unstructured.Unstructured) {
			wantPluginsRegistry(t, objs, "plugins-registry", "/var/lib/kubelet/plugins_registry")
			wantDRA(t, objs, "sdp-simple-device-plugin", "", "")
		}},
		{"registration auto in another directory", "registration: auto\npluginsRegistryDir: /var/lib/k/plugins_registry\n", func(t *testing.T, objs map[string]*unstructured.Unstructured) {
			wantPluginsRegistry(t, objs, "auto", "/var/lib/k/plugins_registry")
			wantDRA(t, objs, "sdp-simple-device-plugin", "/var/lib/kubelet/plugins", "/var/lib/kubelet/plugins_registry")
		}},
		{"extraEnv", "extraEnv:\n  - {name: HTTP_PROXY, value: \"http://proxy:3128\"}\n  - name: POD\n    valueFrom: {fieldRef: {fieldPath: metadata.name}}\n", func(t *testing.T, objs map[string]*unstructured.Unstructured) {
			env, _, _ := unstructured.NestedSlice(container(t, objs, "sdp-simple-device-plugin"), "env")
			want := []any{
				map[string]any{"name": "HTTP_PROXY", "value": "http://proxy:3128"},
				map[string]any{"name": "POD", "valueFrom": map[string]any{"fieldRef": map[string]any{"fieldPath": "metadata.name"}}},
			}
			if len(env) < 3 || !reflect.DeepEqual(env[len(env)-2:], want) {
				t.Errorf("env = %v, want it to end with %v", env, want)
			}
		}},
		{"nodeSelector", "nodeSelector: {disk: ssd}\n", func(t *testing.T, objs map[string]*unstructured.Unstructured) {
			wantField(t, podSpec(t, objs, "sdp-simple-device-plugin"), map[string]any{"disk": "ssd"}, "nodeSelector")
		}},
		{"affinity", "affinity:\n  nodeAffinity:\n    requiredDuringSchedulingIgnoredDuringExecution:\n      nodeSelectorTerms:\n        - matchExpressions: [{key: pool, operator: In, values: [fpga]}]\n", func(t *testing.T, objs map[string]*unstructured.Unstructured) {
			want := map[string]any{"nodeAffinity": map[string]any{"requiredDuringSchedulingIgnoredDuringExecution": map[string]any{
				"nodeSelectorTerms": []any{map[string]any{"matchExpressions": []any{
					map[string]any{"key": "pool", "operator": "In", "values": []any{"fpga"}},
				}}},
			}}}
			wantField(t, podSpec(t, objs, "sdp-simple-device-plugin"), want, "affinity")
		}},
		{"tolerations", "tolerations: [{key: dedicated, operator: Equal, value: fpga, effect: NoSchedule}]\n", func(t *testing.T, objs map[string]*unstructured.Unstructured) {
			want := []any{map[string]any{"key": "dedicated", "operator": "Equal", "value": "fpga", "effect": "NoSchedule"}}
			wantField(t, podSpec(t, objs, "sdp-simple-device-plugin"), want, "tolerations")
		}},
		{"no tolerations and no priority class", "tolerations: []\npriorityClassName: \"\"\n", func(t *testing.T, objs map[string]*unstructured.Unstructured) {
			spec := podSpec(t, objs, "sdp-simple-device-plugin")
			wantField(t, spec, nil, "tolerations")
			wantField(t, spec, nil, "priorityClassName")
		}},
		{"priorityClassName", "priorityClassName: devices\n", func(t *testing.T, objs map[string]*unstructured.Unstructured) {
			wantField(t, podSpec(t, objs, "sdp-simple-device-plugin"), "devices", "priorityClassName")
		}},
		{"node service in other dirs", "mode: node-service\nnodeService: {binDir: /opt/bin, unitDir: /usr/lib/systemd/system, configDir: /var/lib/sdp, port: 9500, start: never}\n",
			func(t *testing.T, objs map[string]*unstructured.Unstructured) {
				if objs["DaemonSet/sdp-simple-device-plugin"] != nil {
					t.Errorf("node-service mode rendered the plugin's DaemonSet too: %v", keys(objs))
				}
				spec := podSpec(t, objs, "sdp-simple-device-plugin-node")
				inits, _, _ := unstructured.NestedSlice(spec, "initContainers")
				if len(inits) != 1 {
					t.Fatalf("%d init containers, want the installer", len(inits))
				}
				wantField(t, inits[0].(map[string]any), []any{"install", "--host-root=/host", "--bin-dir=/opt/bin", "--unit-dir=/usr/lib/systemd/system",
					"--config-dir=/var/lib/sdp", "--port=9500", "--start=never"}, "args")
				c := container(t, objs, "sdp-simple-device-plugin-node")
				wantField(t, c, []any{"sync", "--from=/etc/simple-device-plugin/manifest.yaml", "--to=/host/var/lib/sdp/manifest.yaml",
					"--validate-with=/host/opt/bin/simple-device-plugin", "--listen=:8081"}, "args")
				vs := volumes(t, objs, "sdp-simple-device-plugin-node")
				wantField(t, vs["host-config"], map[string]any{"path": "/var/lib/sdp", "type": "DirectoryOrCreate"}, "hostPath")
				wantField(t, vs["host-bin"], map[string]any{"path": "/opt/bin", "type": "DirectoryOrCreate"}, "hostPath")
				wantField(t, vs["manifest"], "sdp-simple-device-plugin", "configMap", "name")
				mounts, _, _ := unstructured.NestedSlice(c, "volumeMounts")
				want := []any{
					map[string]any{"name": "manifest", "mountPath": "/etc/simple-device-plugin", "readOnly": true},
					map[string]any{"name": "host-config", "mountPath": "/host/var/lib/sdp"},
					map[string]any{"name": "host-bin", "mountPath": "/host/opt/bin", "readOnly": true},
				}
				if !reflect.DeepEqual(mounts, want) {
					t.Errorf("sync's volumeMounts = %v, want %v", mounts, want)
				}
				// DRA is the plugin DaemonSet's: none of it here.
				wantDRA(t, objs, "sdp-simple-device-plugin-node", "", "")
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.check(t, helmTemplate(t, helm, "-f", writeTemp(t, "values.yaml", tc.values)))
		})
	}
}

// TestChartREADME: the chart's README.md is what `make chart-readme`
// writes from values.yaml and values.schema.json.
func TestChartREADME(t *testing.T) {
	want, err := chartdoc.Generate(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(chartDir + "/README.md")
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("%s/README.md is out of date with values.yaml and values.schema.json: run make chart-readme", chartDir)
	}
}

// wantPluginsRegistry checks the device plugins register through the
// plugin watcher's dir, mounted once at the node's path: by the volume
// plugins-registry, or DRA's dra-registry when that is the same dir.
func wantPluginsRegistry(t *testing.T, objs map[string]*unstructured.Unstructured, registration, dir string) {
	t.Helper()
	c := container(t, objs, "sdp-simple-device-plugin")
	wantEnv(t, c, "SDP_REGISTRATION", registration)
	wantEnv(t, c, "SDP_PLUGINS_REGISTRY_DIR", dir)
	mounts, _, _ := unstructured.NestedSlice(c, "volumeMounts")
	var at []map[string]any
	for _, m := range mounts {
		if m := m.(map[string]any); m["mountPath"] == dir {
			at = append(at, m)
		}
	}
	if len(at) != 1 {
		t.Fatalf("%d volumeMounts at %s, want one: %v", len(at), dir, mounts)
	}
	if at[0]["readOnly"] == true {
		t.Errorf("%s mounted read-only: the plugins create their sockets there", dir)
	}
	v := volumes(t, objs, "sdp-simple-device-plugin")[at[0]["name"].(string)]
	hostPath, _, _ := unstructured.NestedString(v, "hostPath", "path")
	if hostPath != dir {
		t.Errorf("volume %v: want the node's %s", v, dir)
	}
}

// wantDRA checks what dra.enabled brings to the DaemonSet name (and the
// release): the pod's token, SDP_DRA_PLUGIN_DIR and SDP_DRA_REGISTRY_DIR,
// both dirs mounted read-write from the node at the same paths, the
// ClusterRole, its binding, the admission policy and its binding. Dirs ""
// mean DRA off: none of it, the token off.
func wantDRA(t *testing.T, objs map[string]*unstructured.Unstructured, daemonSet, pluginDir, registryDir string) {
	t.Helper()
	spec := podSpec(t, objs, daemonSet)
	on := pluginDir != ""
	wantField(t, spec, on, "automountServiceAccountToken")
	var kinds []string
	for _, o := range objs {
		switch o.GetKind() {
		case "ClusterRole", "ClusterRoleBinding", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding":
			kinds = append(kinds, o.GetKind())
		}
	}
	if on && len(kinds) != 4 || !on && len(kinds) != 0 {
		t.Errorf("DRA objects rendered: %v; want the four with DRA on, none off (on: %v)", kinds, on)
	}
	cs, _, _ := unstructured.NestedSlice(spec, "containers")
	for _, c := range cs {
		c := c.(map[string]any)
		pluginEnv, pluginSet := envValue(c, "SDP_DRA_PLUGIN_DIR")
		registryEnv, registrySet := envValue(c, "SDP_DRA_REGISTRY_DIR")
		if !on && (pluginSet || registrySet) || on && (pluginEnv != pluginDir || registryEnv != registryDir) {
			t.Errorf("container %s: SDP_DRA_PLUGIN_DIR=%q (set %v), SDP_DRA_REGISTRY_DIR=%q (set %v); want %q and %q",
				c["name"], pluginEnv, pluginSet, registryEnv, registrySet, pluginDir, registryDir)
		}
	}
	vs := volumes(t, objs, daemonSet)
	if !on {
		if vs["dra-plugins"] != nil || vs["dra-registry"] != nil {
			t.Errorf("DRA dirs mounted with DRA off: %v, %v", vs["dra-plugins"], vs["dra-registry"])
		}
		return
	}
	c := container(t, objs, daemonSet)
	mounts, _, _ := unstructured.NestedSlice(c, "volumeMounts")
	for name, dir := range map[string]string{"dra-plugins": pluginDir, "dra-registry": registryDir} {
		want := map[string]any{"name": name, "mountPath": dir}
		if !slices.ContainsFunc(mounts, func(m any) bool { return reflect.DeepEqual(m, want) }) {
			t.Errorf("no volumeMount %v in %v", want, mounts)
		}
		wantField(t, vs[name], map[string]any{"path": dir, "type": "DirectoryOrCreate"}, "hostPath")
	}
}

// wantPodResources checks the kubelet's PodResources directory is mounted
// read-only from dir on the node at the same path, and the socket in it is
// SDP_POD_RESOURCES_SOCKET; dir "" means reading it is off: the variable
// empty (absent would mean the default socket) and nothing mounted.
func wantPodResources(t *testing.T, objs map[string]*unstructured.Unstructured, dir string) {
	t.Helper()
	c := container(t, objs, "sdp-simple-device-plugin")
	socket := ""
	if dir != "" {
		socket = strings.TrimSuffix(dir, "/") + "/kubelet.sock"
	}
	if got, set := envValue(c, "SDP_POD_RESOURCES_SOCKET"); !set || got != socket {
		t.Errorf("env SDP_POD_RESOURCES_SOCKET = %q (set %v), want %q set", got, set, socket)
	}
	mounts, _, _ := unstructured.NestedSlice(c, "volumeMounts")
	var mount map[string]any
	for _, m := range mounts {
		if m := m.(map[string]any); m["name"] == "pod-resources" {
			mount = m
		}
	}
	v := volumes(t, objs, "sdp-simple-device-plugin")["pod-resources"]
	if dir == "" {
		if mount != nil || v != nil {
			t.Errorf("pod-resources mounted (%v, volume %v) with podResources.enabled false", mount, v)
		}
		return
	}
	if mount == nil {
		t.Fatalf("no pod-resources volumeMount in %v", mounts)
	}
	wantField(t, mount, dir, "mountPath")
	wantField(t, mount, true, "readOnly")
	wantField(t, v, map[string]any{"path": dir, "type": "Directory"}, "hostPath")
}

// wantHostDevices checks the host's /dev and /sys are mounted read-only
// at /host/dev and /host/sys, and SDP_HOST_ROOT is /host, when enabled;
// otherwise neither mount nor variable.
func wantHostDevices(t *testing.T, objs map[string]*unstructured.Unstructured, enabled bool) {
	t.Helper()
	c := container(t, objs, "sdp-simple-device-plugin")
	vs := volumes(t, objs, "sdp-simple-device-plugin")
	mounts, _, _ := unstructured.NestedSlice(c, "volumeMounts")
	byName := map[string]map[string]any{}
	for _, m := range mounts {
		m := m.(map[string]any)
		byName[m["name"].(string)] = m
	}
	root, set := envValue(c, "SDP_HOST_ROOT")
	if !enabled {
		if set || byName["host-dev"] != nil || byName["host-sys"] != nil || vs["host-dev"] != nil || vs["host-sys"] != nil {
			t.Errorf("hostDevices.enabled false: SDP_HOST_ROOT=%q (set %v), mounts %v %v, volumes %v %v; want none",
				root, set, byName["host-dev"], byName["host-sys"], vs["host-dev"], vs["host-sys"])
		}
		return
	}
	if root != "/host" {
		t.Errorf("env SDP_HOST_ROOT = %q (set %v), want /host", root, set)
	}
	for _, dir := range []string{"dev", "sys"} {
		want := map[string]any{"name": "host-" + dir, "mountPath": "/host/" + dir, "readOnly": true}
		if !reflect.DeepEqual(byName["host-"+dir], want) {
			t.Errorf("volumeMount host-%s = %v, want %v", dir, byName["host-"+dir], want)
		}
		wantField(t, vs["host-"+dir], map[string]any{"path": "/" + dir, "type": "Directory"}, "hostPath")
	}
}

// helmTemplate renders the chart as release sdp with args and returns its
// objects by "Kind/name".
func helmTemplate(t *testing.T, helm string, args ...string) map[string]*unstructured.Unstructured {
	t.Helper()
	return byKindName(t, mustRun(context.Background(), t, helm, append([]string{"template", "sdp", chartDir}, args...)...))
}

// helmRefuses renders the chart with args, which must fail, and returns
// helm's message.
func helmRefuses(t *testing.T, helm string, args ...string) string {
	t.Helper()
	out, err := run(context.Background(), t, helm, append([]string{"template", "sdp", chartDir}, args...)...)
	if err == nil {
		t.Fatalf("helm template %s: rendered, want it refused:\n%s", strings.Join(args, " "), out)
	}
	return err.Error()
}

func configMapManifest(t *testing.T, objs map[string]*unstructured.Unstructured) string {
	t.Helper()
	cm := objs["ConfigMap/sdp-simple-device-plugin"]
	if cm == nil {
		t.Fatalf("no ConfigMap sdp-simple-device-plugin in %v", keys(objs))
	}
	text, ok, _ := unstructured.NestedString(cm.Object, "data", "manifest.yaml")
	if !ok {
		t.Fatalf("ConfigMap has no manifest.yaml: %v", cm.Object["data"])
	}
	return text
}

func equalManifest(t *testing.T, how, text string, want map[string]any) {
	t.Helper()
	var got map[string]any
	if err := yaml.Unmarshal([]byte(text), &got); err != nil {
		t.Fatalf("%s: ConfigMap manifest.yaml: %v", how, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s: ConfigMap manifest.yaml differs from the example:\n%s", how, text)
	}
}

func podSpec(t *testing.T, objs map[string]*unstructured.Unstructured, name string) map[string]any {
	t.Helper()
	ds := objs["DaemonSet/"+name]
	if ds == nil {
		t.Fatalf("no DaemonSet %s in %v", name, keys(objs))
	}
	spec, _, _ := unstructured.NestedMap(ds.Object, "spec", "template", "spec")
	return spec
}

func container(t *testing.T, objs map[string]*unstructured.Unstructured, name string) map[string]any {
	t.Helper()
	cs, _, _ := unstructured.NestedSlice(podSpec(t, objs, name), "containers")
	if len(cs) != 1 {
		t.Fatalf("DaemonSet %s has %d containers, want 1", name, len(cs))
	}
	return cs[0].(map[string]any)
}

// volumes are the pod's volumes by name.
func volumes(t *testing.T, objs map[string]*unstructured.Unstructured, name string) map[string]map[string]any {
	t.Helper()
	vs, _, _ := unstructured.NestedSlice(podSpec(t, objs, name), "volumes")
	out := map[string]map[string]any{}
	for _, v := range vs {
		v := v.(map[string]any)
		out[v["name"].(string)] = v
	}
	return out
}

// wantEnv checks the container's env var name has the value ("": absent).
func wantEnv(t *testing.T, c map[string]any, name, value string) {
	t.Helper()
	if got, _ := envValue(c, name); got != value {
		t.Errorf("env %s = %q, want %q", name, got, value)
	}
}

// envValue is the value of the container's env var name, and whether it
// is set.
func envValue(c map[string]any, name string) (value string, set bool) {
	env, _, _ := unstructured.NestedSlice(c, "env")
	for _, e := range env {
		if e := e.(map[string]any); e["name"] == name {
			value, _ = e["value"].(string)
			return value, true
		}
	}
	return "", false
}

// wantField checks obj's field at path (nil: absent).
func wantField(t *testing.T, obj map[string]any, want any, path ...string) {
	t.Helper()
	got, _, _ := unstructured.NestedFieldNoCopy(obj, path...)
	if !reflect.DeepEqual(got, want) {
		t.Errorf(".%s = %v, want %v", strings.Join(path, "."), got, want)
	}
}

func writeTemp(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
