package simulate

import "simple-device-plugin/internal/kubeletsim"

// Kubelet and StartKubelet keep the stand-in kubelet reachable under its
// old names for the host package's tests, which still start it from here;
// once they import kubeletsim themselves this file goes.
type Kubelet = kubeletsim.Kubelet

// StartKubelet serves the Registration API on dir/kubelet.sock with the
// simulation's settings.
func StartKubelet(dir string) (*Kubelet, error) { return kubeletsim.Start(dir, kubeletsim.Config{}) }
