package podresources

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	api "k8s.io/kubelet/pkg/apis/podresources/v1"

	"simple-device-plugin/internal/kubeletsim"
)

// bigNode is 1,000 pods holding 10,000 devices of ours (10 each, over two
// containers), beside as many of someone else's resource.
func bigNode() (*api.ListPodResourcesResponse, map[string]bool) {
	resp := &api.ListPodResourcesResponse{}
	for p := range 1000 {
		ours, theirs := make([]string, 0, 5), make([]string, 0, 5)
		for d := range 5 {
			ours = append(ours, fmt.Sprintf("seat-%d", p*10+d))
			theirs = append(theirs, fmt.Sprintf("GPU-%d", p*10+d))
		}
		second := make([]string, 0, 5)
		for d := 5; d < 10; d++ {
			second = append(second, fmt.Sprintf("seat-%d", p*10+d))
		}
		resp.PodResources = append(resp.PodResources, kubeletsim.Pod("team-"+fmt.Sprint(p%20), fmt.Sprintf("job-%d", p), map[string]map[string][]string{
			"main":    {"example.com/seat": ours, "nvidia.com/gpu": theirs},
			"sidecar": {"example.com/seat": second},
		}))
	}
	return resp, map[string]bool{"example.com/seat": true}
}

// BenchmarkRefresh is one whole refresh on a node of 1,000 pods and 10,000
// devices: the List call over a unix socket (the answer encoded by the
// stand-in, decoded here) and the holdings built from it.
func BenchmarkRefresh(b *testing.B) {
	resp, ours := bigNode()
	dir, err := os.MkdirTemp("", "podres")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "kubelet.sock")
	kubelet, err := kubeletsim.StartPodResources(sock)
	if err != nil {
		b.Fatal(err)
	}
	defer kubelet.Stop()
	kubelet.Set(resp)
	w := New(Config{Socket: sock, Ours: func() map[string]bool { return ours }})
	defer w.closeConn()
	ctx := context.Background()
	w.refresh(ctx) // connect outside the loop
	if s := w.Snapshot(); s.State != StateOK || len(s.Holdings["example.com/seat"]) != 10000 {
		b.Fatalf("refresh: state %s (%s), %d devices held", s.State, s.Err, len(s.Holdings["example.com/seat"]))
	}
	b.ReportAllocs()
	for b.Loop() {
		w.refresh(ctx)
	}
}

// BenchmarkFromList is the holdings alone, from a decoded answer.
func BenchmarkFromList(b *testing.B) {
	resp, ours := bigNode()
	b.ReportAllocs()
	for b.Loop() {
		FromList(resp, ours)
	}
}
