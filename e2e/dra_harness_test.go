package e2e

import (
	"context"
	"os"
	"testing"

	resourceapi "k8s.io/api/resource/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestDRAHarness proves the DRA harness on its own, without our binary:
// etcd and the kube-apiserver are up and serve resource.k8s.io/v1, the
// kubeconfig file is written, the kubelet's DRA manager and plugin manager
// start in the private tmpfs (wiping the node's slices as a starting
// kubelet does), a claim can be allocated the way the scheduler does it,
// the DRA manager refuses to prepare a claim of a driver nobody registered,
// and a kubelet restart brings up new managers. When this fails, suspect
// the harness or the machine, not the host.
func TestDRAHarness(t *testing.T) {
	requireE2E(t)
	api := testAPIServer(t)
	t.Logf("API server %s up (with etcd %s) %v after it was first asked for", api.config.Host, api.etcd.url, api.started.Round(1e6))

	if _, err := os.Stat(api.kubeconfig); err != nil {
		t.Fatalf("kubeconfig: %v", err)
	}
	resources, err := api.client.Discovery().ServerResourcesForGroupVersion(resourceapi.SchemeGroupVersion.String())
	if err != nil {
		t.Fatalf("discovery of %s: %v", resourceapi.SchemeGroupVersion, err)
	}
	served := map[string]bool{}
	for _, r := range resources.APIResources {
		served[r.Name] = true
	}
	for _, want := range []string{"resourceslices", "resourceclaims", "deviceclasses", "resourceslices"} {
		if !served[want] {
			t.Errorf("%s does not serve %s (it serves %v)", resourceapi.SchemeGroupVersion, want, served)
		}
	}

	k := startDRAKubelet(t, api)
	for _, dir := range []string{draPluginDir, registryDir} {
		if _, err := os.Stat(dir); err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
	}

	const driver = "nobody.e2e.example.com"
	pod := claimPod("harness", "harness-claim")
	claim := createAllocatedClaim(t, api, "harness-claim", allocation{driver: driver, request: "dev", devices: []string{"d0"}}, pod)
	if claim.Status.Allocation == nil || len(claim.Status.ReservedFor) != 1 {
		t.Fatalf("claim status not written: %+v", claim.Status)
	}
	if ok, why := k.driverRegistered(driver, false)(); !ok {
		t.Fatal(why)
	}
	if err := k.prepare(pod); err == nil {
		t.Fatalf("the DRA manager prepared a claim of %s, which never registered", driver)
	} else {
		t.Logf("prepare without a driver: %v", err)
	}

	k.restart()
	if _, err := os.Stat(draStateFile); err != nil {
		t.Errorf("the DRA manager's checkpoint: %v", err)
	}
	if _, err := api.client.CoreV1().Nodes().Get(context.Background(), nodeName, metav1.GetOptions{}); err != nil {
		t.Errorf("node %s: %v", nodeName, err)
	}
}
