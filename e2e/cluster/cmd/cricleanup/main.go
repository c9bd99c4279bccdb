// Command cricleanup stops and removes every pod sandbox (and so every
// container) a CRI runtime knows, through the CRI API, the way the kubelet
// would: the runtime tears down each pod's network through CNI and releases
// its network namespace and mounts. The cluster teardown runs it after the
// kubelet is stopped, so nothing is left running whatever state a failed
// test left behind. (The machines have no crictl.)
//
//	cricleanup --endpoint /run/sdp-e2e/containerd/containerd.sock
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func main() {
	endpoint := flag.String("endpoint", "/run/sdp-e2e/containerd/containerd.sock", "CRI unix socket")
	timeout := flag.Duration("timeout", 90*time.Second, "give up after")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	if err := cleanup(ctx, *endpoint); err != nil {
		fmt.Fprintln(os.Stderr, "cricleanup:", err)
		os.Exit(1)
	}
}

func cleanup(ctx context.Context, endpoint string) error {
	conn, err := grpc.NewClient("unix://"+endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	rt := runtimeapi.NewRuntimeServiceClient(conn)
	resp, err := rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		return fmt.Errorf("list sandboxes: %w", err)
	}
	var failed int
	for _, sb := range resp.Items {
		label := sb.Metadata.Namespace + "/" + sb.Metadata.Name
		if _, err := rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: sb.Id}); err != nil {
			fmt.Fprintf(os.Stderr, "stop %s: %v\n", label, err)
			failed++
			continue
		}
		if _, err := rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sb.Id}); err != nil {
			fmt.Fprintf(os.Stderr, "remove %s: %v\n", label, err)
			failed++
			continue
		}
	}
	fmt.Printf("cricleanup: removed %d of %d pod sandboxes\n", len(resp.Items)-failed, len(resp.Items))
	if failed > 0 {
		return fmt.Errorf("%d sandboxes not removed", failed)
	}
	return nil
}
