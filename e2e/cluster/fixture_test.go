package cluster

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	podresourcesapi "k8s.io/kubelet/pkg/apis/podresources/v1"
	"sigs.k8s.io/yaml"
)

const (
	devicePluginDir    = "/var/lib/kubelet/device-plugins"
	podResourcesSocket = "/var/lib/kubelet/pod-resources/kubelet.sock"
	defaultCRISocket   = "/run/sdp-e2e/containerd/containerd.sock"
	kubeletServingCert = "/var/lib/kubelet/pki/kubelet.crt"
	kubeletPort        = 10250
)

type fixture struct {
	ctx           context.Context
	cfg           *rest.Config // the admin's
	cs            kubernetes.Interface
	node          string
	kubectl       string
	clusterScript string
	criSocket     string

	kubelet *http.Client // to the kubelet's own /metrics, as the admin

	registrations map[string]float64 // kubelet's counts after install
	mixedBefore   *corev1.Pod        // the mixed pod as step 3 saw it
	// The devices the kubelet gave the mixed pod (container -> resource ->
	// IDs), as step 3 checked them inside its containers.
	mixedDevices map[string]map[string][]string
	dra          draState // the DRA steps' pods
}

func newFixture(t *testing.T) *fixture {
	kubeconfig := os.Getenv("SDP_CLUSTER_KUBECONFIG")
	require(t, kubeconfig != "", "SDP_CLUSTER_KUBECONFIG not set: no cluster")
	require(t, os.Geteuid() == 0, "not root: the test reads the kubelet's sockets")
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	script, _ := filepath.Abs("cluster.sh")
	kubeletTLS, err := rest.TLSConfigFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{
		ctx:           t.Context(),
		cfg:           cfg,
		cs:            cs,
		kubectl:       requireBin(t, "kubectl"),
		clusterScript: script,
		criSocket:     defaultCRISocket,
		kubelet:       &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: kubeletTLS}},
	}
	nodes, err := cs.CoreV1().Nodes().List(f.ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes.Items) != 1 {
		t.Fatalf("want a single-node cluster, got %d nodes", len(nodes.Items))
	}
	f.node = nodes.Items[0].Name
	// The kubelet serves a self-signed certificate for the node's name
	// (which resolves to 127.0.0.1 here); it is kept across restarts.
	kubeletCert, err := os.ReadFile(kubeletServingCert)
	if err != nil {
		t.Fatal(err)
	}
	kubeletTLS.RootCAs = x509.NewCertPool()
	kubeletTLS.RootCAs.AppendCertsFromPEM(kubeletCert)
	os.Setenv("KUBECONFIG", kubeconfig) // for kubectl
	// The DRA steps' cluster-wide objects, should a failure have left any:
	// after the plugin is gone (the cleanup below), so none comes back.
	t.Cleanup(func() { f.removeDRALeftovers(t) })
	t.Cleanup(func() {
		// Whatever the outcome, leave the cluster empty (step 7 normally
		// did this already) and the host fixture gone.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		run(ctx, t, f.kubectl, "delete", "-k", "overlay", "--ignore-not-found", "--wait", "--timeout=90s")
		f.stopNodeService(t)
		os.RemoveAll("/var/lib/fpga")
	})
	// The DRA steps' pods and claims, should a failure have left any:
	// before the plugin goes (the cleanup above), which unprepares them.
	t.Cleanup(func() { f.deleteDRAWorkloads(t) })
	return f
}

func (f *fixture) findPluginPod() (*corev1.Pod, error) {
	pods, err := f.cs.CoreV1().Pods(pluginNS).List(f.ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=" + pluginName})
	if err != nil {
		return nil, err
	}
	var live []corev1.Pod
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil {
			live = append(live, p)
		}
	}
	if len(live) != 1 {
		return nil, fmt.Errorf("%d plugin pods", len(live))
	}
	return &live[0], nil
}

func (f *fixture) pluginPod(t *testing.T) *corev1.Pod {
	t.Helper()
	p, err := f.findPluginPod()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func (f *fixture) waitDaemonSetReady(t *testing.T, timeout time.Duration) {
	t.Helper()
	poll(t, timeout, "DaemonSet ready", func() (bool, string) {
		ds, err := f.cs.AppsV1().DaemonSets(pluginNS).Get(f.ctx, pluginName, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		s := ds.Status
		status := fmt.Sprintf("desired %d ready %d updated %d", s.DesiredNumberScheduled, s.NumberReady, s.UpdatedNumberScheduled)
		if p, err := f.findPluginPod(); err == nil {
			status += "; pod " + p.Name + " " + podSummary(p)
		}
		return s.DesiredNumberScheduled == 1 && s.NumberReady == 1 && s.UpdatedNumberScheduled == 1 && s.ObservedGeneration == ds.Generation, status
	})
}

func podSummary(p *corev1.Pod) string {
	var parts []string
	parts = append(parts, string(p.Status.Phase))
	for _, s := range p.Status.ContainerStatuses {
		st := "?"
		switch {
		case s.State.Running != nil:
			st = "running"
		case s.State.Waiting != nil:
			st = "waiting " + s.State.Waiting.Reason + " " + s.State.Waiting.Message
		case s.State.Terminated != nil:
			st = fmt.Sprintf("terminated %s exit %d", s.State.Terminated.Reason, s.State.Terminated.ExitCode)
		}
		parts = append(parts, fmt.Sprintf("%s: %s ready=%v restarts=%d", s.Name, st, s.Ready, s.RestartCount))
	}
	return strings.Join(parts, ", ")
}

// waitAllocatable waits until the Node's allocatable (and capacity, for
// non-zero counts) shows exactly want; 0 means absent or zero.
func (f *fixture) waitAllocatable(t *testing.T, want map[string]int64, timeout time.Duration) {
	t.Helper()
	poll(t, timeout, fmt.Sprintf("node allocatable %v", want), func() (bool, string) {
		node, err := f.cs.CoreV1().Nodes().Get(f.ctx, f.node, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		got := map[string]int64{}
		ok := true
		for name, n := range want {
			q, found := node.Status.Allocatable[corev1.ResourceName(name)]
			if found {
				got[name] = q.Value()
			}
			if got[name] != n {
				ok = false
			}
		}
		return ok, fmt.Sprintf("allocatable %v", got)
	})
}

func (f *fixture) waitPodRunning(t *testing.T, name string, timeout time.Duration) *corev1.Pod {
	t.Helper()
	var pod *corev1.Pod
	poll(t, timeout, "pod "+name+" running", func() (bool, string) {
		p, err := f.cs.CoreV1().Pods(podNS).Get(f.ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		pod = p
		return p.Status.Phase == corev1.PodRunning && podReady(p), podSummary(p) + " " + conditions(p)
	})
	return pod
}

func conditions(p *corev1.Pod) string {
	var out []string
	for _, c := range p.Status.Conditions {
		if c.Status != corev1.ConditionTrue {
			out = append(out, fmt.Sprintf("%s=%s(%s: %s)", c.Type, c.Status, c.Reason, c.Message))
		}
	}
	return strings.Join(out, " ")
}

func (f *fixture) containerLogs(t *testing.T, pod, container string) string {
	t.Helper()
	var logs string
	// The container prints at start; its log reaches the kubelet at once.
	poll(t, 30*time.Second, "logs of "+pod+"/"+container, func() (bool, string) {
		data, err := f.cs.CoreV1().Pods(podNS).GetLogs(pod, &corev1.PodLogOptions{Container: container}).DoRaw(f.ctx)
		if err != nil {
			return false, err.Error()
		}
		logs = string(data)
		return strings.Contains(logs, "podinfo done"), fmt.Sprintf("%d bytes so far", len(data))
	})
	return logs
}

// podResources asks the kubelet's pod-resources API which devices each
// container of the pod was given: container -> resource -> sorted IDs.
func (f *fixture) podResources(t *testing.T, pod string) map[string]map[string][]string {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+podResourcesSocket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	resp, err := podresourcesapi.NewPodResourcesListerClient(conn).Get(f.ctx, &podresourcesapi.GetPodResourcesRequest{PodName: pod, PodNamespace: podNS})
	if err != nil {
		t.Fatalf("pod-resources Get %s: %v", pod, err)
	}
	out := map[string]map[string][]string{}
	for _, c := range resp.PodResources.Containers {
		out[c.Name] = map[string][]string{}
		for _, d := range c.Devices {
			ids := append(out[c.Name][d.ResourceName], d.DeviceIds...)
			sort.Strings(ids)
			out[c.Name][d.ResourceName] = ids
		}
	}
	return out
}

// podinfo is what cmd/podinfo printed.
type podinfo struct {
	env     map[string]string
	mounts  map[string]string // mount point -> "root=PATH ro|rw"
	devices map[string]string // path -> "char 1:3"
	files   map[string]string // path -> first line
}

func parsePodinfo(t *testing.T, logs string) podinfo {
	t.Helper()
	p := podinfo{env: map[string]string{}, mounts: map[string]string{}, devices: map[string]string{}, files: map[string]string{}}
	for _, line := range strings.Split(logs, "\n") {
		kind, rest, _ := strings.Cut(line, " ")
		switch kind {
		case "env":
			k, v, _ := strings.Cut(rest, "=")
			p.env[k] = v
		case "mount", "device", "file":
			path, v, _ := strings.Cut(rest, " ")
			map[string]map[string]string{"mount": p.mounts, "device": p.devices, "file": p.files}[kind][path] = v
		}
	}
	return p
}

// checkContainer compares what a container got with what the example
// manifest declares for the devices it was assigned (ids: resource -> IDs).
func checkContainer(t *testing.T, name string, got podinfo, ids map[string][]string) {
	t.Helper()
	wantEnv := map[string]string{}
	wantMounts := map[string]string{}
	wantDevices := map[string]string{}
	wantFiles := map[string]string{}
	if fp := ids[fpga]; len(fp) > 0 {
		wantEnv["FPGA_IDS"] = strings.Join(fp, ",")
		wantEnv["FPGA_COUNT"] = strconv.Itoa(len(fp))
		wantMounts["/opt/fpga"] = "root=/var/lib/fpga/shared ro"
		wantFiles["/opt/fpga/SHARED"] = "shared"
		for _, id := range fp {
			// Both from the CDI spec the plugin wrote, not the Allocate answer.
			wantMounts["/dev/fpga/"+id] = "root=/var/lib/fpga/" + id + " rw"
			wantFiles["/dev/fpga/"+id+"/ID"] = id
			wantDevices["/dev/"+id] = "char 1:3" // /dev/null
		}
	}
	if s := ids[seat]; len(s) > 0 {
		wantEnv["LICENSE_SEATS"] = strings.Join(s, ",")
		wantEnv["LICENSE_SERVER"] = "license.example.com:27000"
	}
	if d := ids[dongle]; len(d) > 0 {
		wantEnv["DONGLE_IDS"] = strings.Join(d, ",")
	}
	if v := ids[vaccel]; len(v) > 0 {
		wantEnv["VACCEL_SHARES"] = strconv.Itoa(len(v))
		wantEnv["VACCEL_SHARE_IDS"] = strings.Join(v, " ")
		wantMounts["/var/run/vaccel"] = "root=/tmp rw"
	}
	// Every variable of the manifest's resources: those of the resources
	// the container did not ask for must be absent.
	for _, k := range []string{"FPGA_IDS", "FPGA_COUNT", "LICENSE_SEATS", "LICENSE_SERVER", "VACCEL_SHARES", "VACCEL_SHARE_IDS", "DONGLE_IDS"} {
		v, ok := got.env[k]
		if w, want := wantEnv[k]; want && (!ok || v != w) {
			t.Errorf("%s: env %s=%q (set %v), want %q", name, k, v, ok, w)
		} else if !want && ok {
			t.Errorf("%s: env %s=%q, want it unset", name, k, v)
		}
	}
	for path, w := range wantMounts {
		if g := got.mounts[path]; g != w {
			t.Errorf("%s: mount %s: got %q, want %q", name, path, g, w)
		}
	}
	for path, g := range got.mounts {
		if strings.HasPrefix(path, "/dev/fpga") || path == "/opt/fpga" || path == "/var/run/vaccel" {
			if _, ok := wantMounts[path]; !ok {
				t.Errorf("%s: unexpected mount %s %s", name, path, g)
			}
		}
	}
	for path, w := range wantDevices {
		if g := got.devices[path]; g != w {
			t.Errorf("%s: device %s: got %q, want %q", name, path, g, w)
		}
	}
	for path, g := range got.devices {
		if regexp.MustCompile(`^/dev/fpga-\d+$`).MatchString(path) && wantDevices[path] == "" {
			t.Errorf("%s: unexpected device %s %s", name, path, g)
		}
	}
	for path, w := range wantFiles {
		if g := got.files[path]; g != w {
			t.Errorf("%s: file %s: got %q, want %q", name, path, g, w)
		}
	}
	if !t.Failed() {
		t.Logf("%s: env %v; mounts and device nodes as the manifest says for %v", name, wantEnv, ids)
	}
}

// checkAnnotations reads the container's OCI spec through the CRI and
// checks the manifest's annotations reached the runtime.
func (f *fixture) checkAnnotations(t *testing.T, container string, ids map[string][]string) {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+f.criSocket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rt := runtimeapi.NewRuntimeServiceClient(conn)
	list, err := rt.ListContainers(f.ctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{
		State: &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING},
		LabelSelector: map[string]string{
			"io.kubernetes.pod.name":       mixedPod,
			"io.kubernetes.pod.namespace":  podNS,
			"io.kubernetes.container.name": container,
		},
	}})
	if err != nil || len(list.Containers) != 1 {
		t.Fatalf("CRI: container %s: %v (%d found)", container, err, len(list.Containers))
	}
	st, err := rt.ContainerStatus(f.ctx, &runtimeapi.ContainerStatusRequest{ContainerId: list.Containers[0].Id, Verbose: true})
	if err != nil {
		t.Fatal(err)
	}
	var info struct {
		RuntimeSpec struct {
			Annotations map[string]string `json:"annotations"`
		} `json:"runtimeSpec"`
	}
	if err := json.Unmarshal([]byte(st.Info["info"]), &info); err != nil {
		t.Fatalf("CRI status info of %s: %v", container, err)
	}
	got := info.RuntimeSpec.Annotations
	want := map[string]string{}
	if fp := ids[fpga]; len(fp) > 0 {
		want["example.com/fpga.ids"] = strings.Join(fp, ",")
	}
	if s := ids[seat]; len(s) > 0 {
		want["example.com/license-seats"] = strconv.Itoa(len(s))
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: OCI annotation %s=%q, want %q", container, k, got[k], w)
		}
	}
	if _, ok := want["example.com/license-seats"]; !ok && got["example.com/license-seats"] != "" {
		t.Errorf("%s: annotation example.com/license-seats=%q, want none", container, got["example.com/license-seats"])
	}
}

var registrationLine = regexp.MustCompile(`^kubelet_device_plugin_registration_total\{resource_name="([^"]+)"\} (\S+)$`)

// kubeletRegistrations reads the kubelet's own count of device plugin
// registrations per resource, from its /metrics. (Not through the API
// server's node proxy: that refuses loopback addresses.)
func (f *fixture) kubeletRegistrations(t *testing.T) map[string]float64 {
	t.Helper()
	reg, err := f.registrationsErr()
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

func (f *fixture) kubeletRegistrationsOrNil() map[string]float64 {
	reg, _ := f.registrationsErr()
	return reg
}

func (f *fixture) registrationsErr() (map[string]float64, error) {
	body, err := httpGetWith(f.kubelet, fmt.Sprintf("https://%s:%d/metrics", f.node, kubeletPort))
	if err != nil {
		return nil, fmt.Errorf("kubelet metrics: %w", err)
	}
	data := []byte(body)
	reg := map[string]float64{}
	for _, line := range strings.Split(string(data), "\n") {
		if m := registrationLine.FindStringSubmatch(line); m != nil {
			v, _ := strconv.ParseFloat(m[2], 64)
			reg[m[1]] = v
		}
	}
	return reg, nil
}

// pluginSockets lists the sockets in the device-plugin directory other
// than the kubelet's own.
func (f *fixture) pluginSockets(t *testing.T) []string {
	entries, err := os.ReadDir(devicePluginDir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if e.Type()&os.ModeSocket != 0 && e.Name() != "kubelet.sock" {
			out = append(out, e.Name())
		}
	}
	return out
}

func httpGet(url string) (string, error) {
	return httpGetWith(&http.Client{Timeout: 5 * time.Second}, url)
}

func httpGetWith(client *http.Client, url string) (string, error) {
	resp, err := client.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return string(body), fmt.Errorf("%s: %s: %.300s", url, resp.Status, body)
	}
	return string(body), nil
}

// diagnose prints what helps to understand a failed step.
func (f *fixture) diagnose(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, args := range [][]string{
		{"get", "nodes,pods", "-A", "-o", "wide"},
		{"get", "events", "-A", "--sort-by=.lastTimestamp"},
		{"get", "node", f.node, "-o", "jsonpath={.status.capacity}{\"\\n\"}{.status.allocatable}{\"\\n\"}"},
		{"get", "resourceslices,deviceclasses", "-o", "wide"},
		{"get", "resourceclaims", "-A", "-o", "wide"},
		{"logs", "-n", pluginNS, "-l", "app.kubernetes.io/name=" + pluginName, "--tail=60", "--all-containers", "--prefix"},
		{"logs", "-n", pluginNS, "-l", "app.kubernetes.io/name=" + pluginName, "--tail=30", "--previous", "--prefix"},
	} {
		out, err := run(ctx, t, f.kubectl, args...)
		fmt.Printf("--- kubectl %s\n%s", strings.Join(args, " "), out)
		if err != nil {
			fmt.Println(err)
		}
	}
}

// hostCDISpecDir is where the DaemonSet has the plugin write its CDI
// specs: the node's /var/run/cdi, which containerd reads.
const hostCDISpecDir = "/var/run/cdi"

// specFile is the CDI spec the plugin writes for a resource.
func specFile(resource string) string {
	return filepath.Join(hostCDISpecDir, "simple-device-plugin-"+strings.ReplaceAll(resource, "/", "_")+".yaml")
}

// checkSpecFile reads the plugin's CDI spec of a resource on the node and
// checks it defines exactly these devices.
func (f *fixture) checkSpecFile(t *testing.T, resource string, ids ...string) {
	t.Helper()
	kind, got, err := readSpecFile(specFile(resource))
	if err != nil {
		t.Errorf("the CDI spec of %s: %v", resource, err)
		return
	}
	if kind != resource || !slices.Equal(got, ids) {
		t.Errorf("the CDI spec of %s: kind %s, devices %v; want %v", resource, kind, got, ids)
	}
}

// readSpecFile reads a CDI spec file's kind and device names, in order.
func readSpecFile(path string) (kind string, devices []string, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", nil, err
	}
	var spec struct {
		Kind    string `json:"kind"`
		Devices []struct {
			Name string `json:"name"`
		} `json:"devices"`
	}
	if err := yaml.Unmarshal(data, &spec); err != nil {
		return "", nil, err
	}
	for _, d := range spec.Devices {
		devices = append(devices, d.Name)
	}
	return spec.Kind, devices, nil
}

// podinfoPod is a one-container pod of the test's workload asking for limits.
func podinfoPod(name string, limits corev1.ResourceList) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: podNS},
		Spec: corev1.PodSpec{
			AutomountServiceAccountToken:  new(false),
			TerminationGracePeriodSeconds: new(int64(1)),
			Containers: []corev1.Container{{
				Name:            "c",
				Image:           "localhost/sdp-e2e/podinfo:e2e",
				ImagePullPolicy: corev1.PullNever,
				Command:         []string{"/podinfo"},
				Args:            []string{"/opt/fpga", "/dev/fpga"},
				Resources:       corev1.ResourceRequirements{Limits: limits},
			}},
		},
	}
}

// startPodinfo runs a podinfo pod and waits for it to run.
func (f *fixture) startPodinfo(t *testing.T, name string, limits corev1.ResourceList) *corev1.Pod {
	t.Helper()
	if _, err := f.cs.CoreV1().Pods(podNS).Create(f.ctx, podinfoPod(name, limits), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.deletePod(t, name) })
	return f.waitPodRunning(t, name, 2*time.Minute)
}

func (f *fixture) deletePod(t *testing.T, name string) {
	err := f.cs.CoreV1().Pods(podNS).Delete(context.Background(), name, metav1.DeleteOptions{GracePeriodSeconds: new(int64(0))})
	if err != nil && !apierrors.IsNotFound(err) {
		t.Errorf("delete pod %s: %v", name, err)
	}
}

// waitUnschedulable creates a pod asking for limits and waits until the
// scheduler says why it cannot place it; the pod is deleted when the test
// ends.
func (f *fixture) waitUnschedulable(t *testing.T, name string, limits corev1.ResourceList, why string) {
	t.Helper()
	if _, err := f.cs.CoreV1().Pods(podNS).Create(f.ctx, podinfoPod(name, limits), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.deletePod(t, name) })
	poll(t, time.Minute, name+" unschedulable", func() (bool, string) {
		p, err := f.cs.CoreV1().Pods(podNS).Get(f.ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodScheduled {
				return c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable && strings.Contains(c.Message, why),
					fmt.Sprintf("PodScheduled=%s %s: %s", c.Status, c.Reason, c.Message)
			}
		}
		return false, "phase " + string(p.Status.Phase)
	})
}
