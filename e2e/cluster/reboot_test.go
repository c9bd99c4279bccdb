package cluster

import (
	"bufio"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The pods a reboot step watches: bare pods (restartPolicy Always), each
// with an fpga (device nodes, mounts, a CDI spec that the reboot drops
// from /var/run/cdi) and two vaccel shares (environment).
var (
	rebootPods   = []string{"reboot-a", "reboot-b", "reboot-c"}
	rebootLimits = corev1.ResourceList{fpga: resource.MustParse("1"), vaccel: resource.MustParse("2")}
)

// clusterRoot is cluster.sh's state dir, where the components log.
func clusterRoot() string {
	if r := os.Getenv("SDP_CLUSTER_ROOT"); r != "" {
		return r
	}
	return "/var/lib/sdp-e2e"
}

// rebootOutcome is what one reboot did to the watched pods.
type rebootOutcome struct {
	running, rejected []string // running again with their devices; failed at admission
	other             []string // neither, when the wait ended
	events            int      // UnexpectedAdmissionError events since the power cut
	powerCut          time.Time
	kubeletStarted    time.Time // the new kubelet's "Started kubelet"
	registered        time.Time // the last resource registered with it
	settled           time.Time // when the test saw every pod settle
}

func (o rebootOutcome) String() string {
	s := fmt.Sprintf("%d of %d pods running again, %d rejected (UnexpectedAdmissionError events: %d)",
		len(o.running), len(rebootPods), len(o.rejected), o.events)
	if !o.kubeletStarted.IsZero() {
		s += fmt.Sprintf("; kubelet started %.1fs after the power cut", o.kubeletStarted.Sub(o.powerCut).Seconds())
		if !o.registered.IsZero() {
			s += fmt.Sprintf(", every resource registered %.0f ms after the kubelet started", msSince(o.kubeletStarted, o.registered))
		}
		s += fmt.Sprintf(", pods settled %.1fs after it", o.settled.Sub(o.kubeletStarted).Seconds())
	}
	return s
}

func msSince(from, to time.Time) float64 { return float64(to.Sub(from).Microseconds()) / 1000 }

// startRebootPods runs the watched pods; they are deleted when t ends.
func (f *fixture) startRebootPods(t *testing.T) {
	for _, name := range rebootPods {
		f.startPodinfo(t, name, rebootLimits)
	}
}

// rebootAndSettle reboots the node (cluster.sh reboot) and waits until
// every watched pod is either running again or failed, reading when the
// new kubelet started and when the plugin registered (from pluginLog,
// the plugin's log since the power cut).
func (f *fixture) rebootAndSettle(t *testing.T, pluginLog func(since time.Time) string) rebootOutcome {
	t.Helper()
	// A pod is running again once its containers are new instances: the
	// API may still show the old ones, Running, for a moment after the boot.
	before := map[string]map[string]string{}
	for _, name := range rebootPods {
		p, err := f.cs.CoreV1().Pods(podNS).Get(f.ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		before[name] = containerIDs(p)
	}
	out := rebootOutcome{powerCut: time.Now()}
	if said := strings.TrimSpace(mustRun(f.ctx, t, f.clusterScript, "reboot")); said != "" {
		t.Log(said) // the node service's READY=1, when it starts
	}
	poll(t, 3*time.Minute, "every watched pod running again or failed", func() (bool, string) {
		out.running, out.rejected, out.other = nil, nil, nil
		for _, name := range rebootPods {
			p, err := f.cs.CoreV1().Pods(podNS).Get(f.ctx, name, metav1.GetOptions{})
			switch {
			case err != nil:
				return false, err.Error()
			case p.Status.Phase == corev1.PodFailed:
				out.rejected = append(out.rejected, name+" ("+p.Status.Reason+")")
			case p.Status.Phase == corev1.PodRunning && podReady(p) && allNew(before[name], containerIDs(p)):
				out.running = append(out.running, name)
			default:
				out.other = append(out.other, name+": "+podSummary(p))
			}
		}
		return len(out.other) == 0, strings.Join(out.other, "; ")
	})
	out.settled = time.Now()
	out.events = f.admissionErrors(t, out.powerCut)
	out.kubeletStarted = kubeletStartedAfter(t, out.powerCut)
	out.registered = lastRegistration(pluginLog(out.powerCut), out.kubeletStarted)
	return out
}

// containerIDs are the IDs of a pod's running containers, by name.
func containerIDs(p *corev1.Pod) map[string]string {
	ids := map[string]string{}
	for _, s := range p.Status.ContainerStatuses {
		if s.State.Running != nil {
			ids[s.Name] = s.ContainerID
		}
	}
	return ids
}

// allNew: every container runs, and none is an instance from before.
func allNew(before, now map[string]string) bool {
	if len(now) == 0 || len(now) < len(before) {
		return false
	}
	for name, id := range now {
		if id == "" || id == before[name] {
			return false
		}
	}
	return true
}

// admissionErrors counts the UnexpectedAdmissionError events of the
// watched pods since t.
func (f *fixture) admissionErrors(t *testing.T, since time.Time) int {
	t.Helper()
	events, err := f.cs.CoreV1().Events(podNS).List(f.ctx, metav1.ListOptions{FieldSelector: "reason=UnexpectedAdmissionError"})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range events.Items {
		last := e.LastTimestamp.Time
		if last.IsZero() {
			last = e.EventTime.Time
		}
		if slices.Contains(rebootPods, e.InvolvedObject.Name) && !last.Before(since.Truncate(time.Second)) {
			n++
		}
	}
	return n
}

// checkRebootPods checks inside each watched pod what its new container
// got, against what the kubelet says it holds.
func (f *fixture) checkRebootPods(t *testing.T) {
	t.Helper()
	for _, name := range rebootPods {
		checkContainer(t, name, parsePodinfo(t, f.containerLogs(t, name, "c")), f.podResources(t, name)["c"])
	}
}

// klogTime is the time in a klog line: I1207 19:25:05.818123 ...
var klogTime = regexp.MustCompile(`^[IWEF](\d{4} \d{2}:\d{2}:\d{2}\.\d{6})`)

// kubeletStartedAfter is when the kubelet last logged "Started kubelet",
// if that was after t.
func kubeletStartedAfter(t *testing.T, after time.Time) time.Time {
	t.Helper()
	f, err := os.Open(clusterRoot() + "/logs/kubelet.log")
	if err != nil {
		t.Logf("kubelet log: %v", err)
		return time.Time{}
	}
	defer f.Close()
	var last time.Time
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.Contains(line, `"Started kubelet"`) {
			continue
		}
		if m := klogTime.FindStringSubmatch(line); m != nil {
			ts, err := time.ParseInLocation("0102 15:04:05.000000", m[1], time.Local)
			if err == nil {
				ts = ts.AddDate(after.Year(), 0, 0)
				if ts.After(after) {
					last = ts
				}
			}
		}
	}
	return last
}

// logTime is the time of a slog line, text or JSON.
var logTime = regexp.MustCompile(`"?time"?[=:]"?(\d{4}-\d{2}-\d{2}T[0-9:.]+(?:Z|[+-]\d{2}:\d{2}))`)

// lastRegistration is the time of the last "registered with the kubelet"
// line at or after since: when every resource was registered.
func lastRegistration(log string, since time.Time) time.Time {
	var last time.Time
	for _, line := range strings.Split(log, "\n") {
		if !strings.Contains(line, "registered with the kubelet") {
			continue
		}
		m := logTime.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		ts, err := time.Parse(time.RFC3339Nano, m[1])
		if err == nil && !ts.Before(since) && ts.After(last) {
			last = ts
		}
	}
	return last
}

// pluginPodLog is the DaemonSet plugin pod's log.
func (f *fixture) pluginPodLog(t *testing.T) func(time.Time) string {
	return func(since time.Time) string {
		out, err := run(f.ctx, t, f.kubectl, "logs", "-n", pluginNS, "-l", "app.kubernetes.io/name="+pluginName, "--tail=-1",
			"--since-time="+since.UTC().Format(time.RFC3339))
		if err != nil {
			t.Logf("plugin pod log: %v", err)
		}
		return out
	}
}

// stepRebootDaemonSetMode: the plugin is a pod, so after a reboot the
// kubelet re-admits the node's pods before the plugin pod it must start
// again has registered. What happens, three reboots in a row (the watched
// pods started again before each), is reported as a figure, not a
// failure: it is the kubelet's behaviour with every device plugin that
// runs as a pod. The node serves again after each.
func (f *fixture) stepRebootDaemonSetMode(t *testing.T) {
	var running, rejected int
	var regMS []float64
	for i := 1; i <= 3; i++ {
		f.startRebootPods(t)
		out := f.rebootAndSettle(t, f.pluginPodLog(t))
		fmt.Printf("=== reboot %d, DaemonSet mode: %s\n", i, out)
		running += len(out.running)
		rejected += len(out.rejected)
		if !out.registered.IsZero() && !out.kubeletStarted.IsZero() {
			regMS = append(regMS, msSince(out.kubeletStarted, out.registered))
		}
		f.waitDaemonSetReady(t, 2*time.Minute)
		f.waitAllocatable(t, map[string]int64{fpga: reloaded[fpga], vaccel: reloaded[vaccel]}, time.Minute)
		f.deletePodsAndWait(t, rebootPods)
	}
	fmt.Printf("=== DaemonSet mode over 3 reboots: %d of %d pods running again, %d rejected; the plugin registered %v ms after the kubelet started\n",
		running, 3*len(rebootPods), rejected, rounded(regMS, 0))
}

// deletePodsAndWait deletes pods and waits until they are gone, so that
// pods of the same names can be created again.
func (f *fixture) deletePodsAndWait(t *testing.T, names []string) {
	t.Helper()
	for _, name := range names {
		f.deletePod(t, name)
	}
	poll(t, time.Minute, fmt.Sprintf("pods %v gone", names), func() (bool, string) {
		for _, name := range names {
			if _, err := f.cs.CoreV1().Pods(podNS).Get(f.ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				return false, fmt.Sprintf("%s: %v", name, err)
			}
		}
		return true, ""
	})
}
