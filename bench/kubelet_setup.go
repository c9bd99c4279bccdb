package main

import (
	"context"
	"fmt"
	"os"
	"time"

	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"simple-device-plugin/internal/kubeletsim"
)

// kubeletConfig makes the stand-in kubelet behave as a real node's for the
// figures: it dials plugins back with the kubelet's own options, and
// refuses a socket that is still connected, so the retries that causes
// are measured too.
var kubeletConfig = kubeletsim.Config{KubeletDial: true, RefuseConnected: true}

func startKubelet(dir string) (*kubeletsim.Kubelet, error) {
	return kubeletsim.Start(dir, kubeletConfig)
}

// startKubeletInTempDir starts a kubelet on a fresh temporary dir; done
// stops it and removes the dir.
func startKubeletInTempDir() (k *kubeletsim.Kubelet, dir string, done func(), err error) {
	if dir, err = tempDir("sdpb"); err != nil {
		return nil, "", nil, err
	}
	if k, err = startKubelet(dir); err != nil {
		os.RemoveAll(dir)
		return nil, "", nil, err
	}
	return k, dir, func() { k.Stop(); os.RemoveAll(dir) }, nil
}

// waitFor waits until cond holds of what the kubelet saw, for at most
// timeout.
func waitFor(k *kubeletsim.Kubelet, timeout time.Duration, what string, cond func(record func(string) kubeletsim.Record) bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := k.WaitFor(ctx, cond); err != nil {
		return fmt.Errorf("waiting %v for %s: %w", timeout, what, err)
	}
	return nil
}

// waitAllListed waits until every resource is connected and has sent its
// list since it last registered, and returns when the last of them got
// its first device list.
func waitAllListed(k *kubeletsim.Kubelet, names []string, timeout time.Duration) (time.Time, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := k.WaitRegistered(ctx, names); err != nil {
		return time.Time{}, err
	}
	var last time.Time
	for _, n := range names {
		if t := k.Record(n).ListedAt; t.After(last) {
			last = t
		}
	}
	return last, nil
}

// client returns the kubelet's connection to a resource's plugin.
func client(k *kubeletsim.Kubelet, resource string) (pluginapi.DevicePluginClient, error) {
	ep := k.Endpoint(resource)
	if ep == nil {
		return nil, fmt.Errorf("%s is not connected to the kubelet", resource)
	}
	return ep.Client, nil
}
