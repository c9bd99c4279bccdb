package cluster

import (
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	podresourcesapi "k8s.io/kubelet/pkg/apis/podresources/v1"
)

// Who holds what, as the plugin tells it (from the kubelet's PodResources
// API, which its DaemonSet mounts): /metrics, /allocations and the status
// command, checked against what the kubelet gave the mixed pod and against
// the node's free devices.

// holderView is who holds what as one source tells it: the mixed pod's
// devices ("resource device container"), and the free devices of each
// resource.
type holderView struct {
	mixed map[string]bool
	free  map[string]int
}

func newHolderView() holderView {
	return holderView{mixed: map[string]bool{}, free: map[string]int{}}
}

func (v holderView) String() string {
	var free []string
	for _, name := range slices.Sorted(maps.Keys(v.free)) {
		free = append(free, fmt.Sprintf("%s=%d", name, v.free[name]))
	}
	return fmt.Sprintf("pod-mixed holds [%s]; free [%s]", strings.Join(slices.Sorted(maps.Keys(v.mixed)), ", "), strings.Join(free, " "))
}

// withoutZeros is v with the resources of no free device left out: the
// status table shows free devices, so it cannot show a count of none.
func (v holderView) withoutZeros() holderView {
	out := holderView{mixed: v.mixed, free: maps.Clone(v.free)}
	maps.DeleteFunc(out.free, func(_ string, n int) bool { return n == 0 })
	return out
}

func (v holderView) equal(w holderView) bool {
	return maps.Equal(v.mixed, w.mixed) && maps.Equal(v.free, w.free)
}

// allocations is /allocations as the status command's -o json prints it.
type allocations struct {
	State     string     `json:"state"`
	Reason    string     `json:"reason"`
	Refreshed *time.Time `json:"refreshed"`
	Resources []struct {
		Resource string `json:"resource"`
		Served   bool   `json:"served"`
		Free     int    `json:"free"`
		Devices  []struct {
			ID      string `json:"id"`
			Health  string `json:"health"`
			Holders []struct {
				Namespace string `json:"namespace"`
				Pod       string `json:"pod"`
				Container string `json:"container"`
			} `json:"holders"`
		} `json:"devices"`
	} `json:"resources"`
}

// view is who holds what in a by the same rules as the others; a device
// of the mixed pod's that is not Healthy is an error.
func (a allocations) view() (holderView, error) {
	v := newHolderView()
	for _, r := range a.Resources {
		if r.Served {
			v.free[r.Resource] = r.Free
		}
		for _, d := range r.Devices {
			for _, h := range d.Holders {
				if h.Namespace == podNS && h.Pod == mixedPod {
					if d.Health != "Healthy" {
						return v, fmt.Errorf("%s %s of %s is %s", r.Resource, d.ID, h.Container, d.Health)
					}
					v.mixed[r.Resource+" "+d.ID+" "+h.Container] = true
				}
			}
		}
	}
	return v, nil
}

var (
	metricLine = regexp.MustCompile(`^(sdp_device_allocated|sdp_devices_free)\{(.*)\} (\S+)$`)
	labelPair  = regexp.MustCompile(`(\w+)="((?:[^"\\]|\\.)*)"`)
)

// metricsView reads sdp_device_allocated and sdp_devices_free from the
// plugin's /metrics.
func metricsView(body string) (holderView, error) {
	v := newHolderView()
	for _, line := range strings.Split(body, "\n") {
		m := metricLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		labels := map[string]string{}
		for _, p := range labelPair.FindAllStringSubmatch(m[2], -1) {
			labels[p[1]] = p[2]
		}
		switch m[1] {
		case "sdp_devices_free":
			var n int
			if _, err := fmt.Sscan(m[3], &n); err != nil {
				return v, fmt.Errorf("%s: %v", line, err)
			}
			v.free[labels["resource"]] = n
		case "sdp_device_allocated":
			if labels["namespace"] != podNS || labels["pod"] != mixedPod {
				continue
			}
			if m[3] != "1" {
				return v, fmt.Errorf("%s: want 1", line)
			}
			key := labels["resource"] + " " + labels["device"] + " " + labels["container"]
			if v.mixed[key] {
				return v, fmt.Errorf("%s: twice", line)
			}
			v.mixed[key] = true
		}
	}
	return v, nil
}

// tableView reads the status command's table: RESOURCE DEVICE HEALTH POD
// CONTAINER, "-" for the pod and container of a free device.
func tableView(out string) (holderView, error) {
	v := newHolderView()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if got := strings.Join(strings.Fields(lines[0]), " "); got != "RESOURCE DEVICE HEALTH POD CONTAINER" {
		return v, fmt.Errorf("header %q", lines[0])
	}
	for _, line := range lines[1:] {
		f := strings.Fields(line)
		if len(f) != 5 {
			return v, fmt.Errorf("row %q: want 5 columns", line)
		}
		resource, device, health, pod, container := f[0], f[1], f[2], f[3], f[4]
		switch {
		case pod == "-" && health == "Healthy":
			v.free[resource]++
		case pod == podNS+"/"+mixedPod:
			if health != "Healthy" {
				return v, fmt.Errorf("row %q: the mixed pod's device is %s", line, health)
			}
			v.mixed[resource+" "+device+" "+container] = true
		}
	}
	return v, nil
}

// wantHolders is what every source must say: the mixed pod holds the
// devices the kubelet gave it (those of the resources the plugin serves),
// and as many devices of each resource are free as the node has free
// (allocatable, less what the kubelet says its pods hold).
func (f *fixture) wantHolders(served []string) (holderView, error) {
	v := newHolderView()
	for container, byResource := range f.mixedDevices {
		for _, res := range served {
			for _, id := range byResource[res] {
				v.mixed[res+" "+id+" "+container] = true
			}
		}
	}
	node, err := f.cs.CoreV1().Nodes().Get(f.ctx, f.node, metav1.GetOptions{})
	if err != nil {
		return v, err
	}
	held, err := f.kubeletHeld()
	if err != nil {
		return v, err
	}
	for _, res := range served {
		q := node.Status.Allocatable[corev1.ResourceName(res)]
		v.free[res] = int(q.Value()) - held[res]
	}
	return v, nil
}

// kubeletHeld counts the devices of each resource the kubelet's
// PodResources API says its pods hold.
func (f *fixture) kubeletHeld() (map[string]int, error) {
	conn, err := grpc.NewClient("unix://"+podResourcesSocket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	resp, err := podresourcesapi.NewPodResourcesListerClient(conn).List(f.ctx, &podresourcesapi.ListPodResourcesRequest{})
	if err != nil {
		return nil, fmt.Errorf("pod-resources List: %w", err)
	}
	held := map[string]int{}
	for _, p := range resp.PodResources {
		for _, c := range p.Containers {
			for _, d := range c.Devices {
				held[d.ResourceName] += len(d.DeviceIds)
			}
		}
	}
	return held, nil
}

// checkHolders waits until the plugin pod tells who holds what rightly, in
// /metrics, from a PodResources answer it read after since (its
// /allocations says when); then the status command, as a table and as
// JSON, must say the same. It returns when /metrics was first right, and
// when the plugin read the answer that /allocations was last from.
func (f *fixture) checkHolders(t *testing.T, served []string, since time.Time) (seen, refreshed time.Time) {
	t.Helper()
	base := "http://" + f.pluginPod(t).Status.PodIP + ":8080"
	var want holderView
	poll(t, time.Minute, "the plugin's /metrics and /allocations tell who holds what", func() (bool, string) {
		var err error
		if want, err = f.wantHolders(served); err != nil {
			return false, err.Error()
		}
		body, err := httpGet(base + "/metrics")
		if err != nil {
			return false, err.Error()
		}
		got, err := metricsView(body)
		if err != nil {
			return false, err.Error()
		}
		if !got.equal(want) {
			return false, fmt.Sprintf("/metrics: %v; want %v", got, want)
		}
		if seen.IsZero() {
			seen = time.Now()
		}
		body, err = httpGet(base + "/allocations")
		if err != nil {
			return false, err.Error()
		}
		var a allocations
		if err := json.Unmarshal([]byte(body), &a); err != nil {
			return false, fmt.Sprintf("/allocations: %v", err)
		}
		if a.State != "ok" || a.Refreshed == nil || !a.Refreshed.After(since) {
			return false, fmt.Sprintf("/allocations: state %s (%s), refreshed %v; want ok, read after %s", a.State, a.Reason, a.Refreshed, since.Format(time.RFC3339Nano))
		}
		refreshed = *a.Refreshed
		return true, ""
	})
	t.Logf("who holds what: %v", want)

	status := repoRoot + "/bin/simple-device-plugin"
	listen := strings.TrimPrefix(base, "http://")
	table := mustRun(f.ctx, t, status, "status", "--listen", listen)
	if got, err := tableView(table); err != nil || !got.equal(want.withoutZeros()) {
		t.Errorf("status: %v, %v; want %v:\n%s", got, err, want.withoutZeros(), table)
	}
	out := mustRun(f.ctx, t, status, "status", "--listen", listen, "-o", "json")
	var a allocations
	if err := json.Unmarshal([]byte(out), &a); err != nil {
		t.Fatalf("status -o json: %v\n%s", err, out)
	}
	if got, err := a.view(); a.State != "ok" || err != nil || !got.equal(want) {
		t.Errorf("status -o json: state %s, %v, %v; want ok, %v:\n%s", a.State, got, err, want, out)
	}
	if !t.Failed() {
		var rows []string
		for _, line := range strings.Split(table, "\n") {
			if strings.Contains(line, podNS+"/"+mixedPod) {
				rows = append(rows, line)
			}
		}
		t.Logf("status, the mixed pod's rows:\n%s", strings.Join(rows, "\n"))
	}
	return seen, refreshed
}

// readySince is when the pod last became Ready (whole seconds).
func readySince(p *corev1.Pod) time.Time {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.LastTransitionTime.Time
		}
	}
	return time.Time{}
}
