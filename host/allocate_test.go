package host

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"simple-device-plugin/manifest"
)

// allocateManifest uses every kind of output the kubelet's answer carries.
const allocateManifest = `apiVersion: simple-device-plugin/v1alpha1
kind: Manifest
resources:
  - name: example.com/a
    count: 3
    env: {A_IDS: '{{ join .IDs "," }}', EMPTY: ""}
    annotations: {example.com/a.node: "{{ .Node }}"}
    mounts:
      - {hostPath: /srv/a, containerPath: /opt/a, readOnly: true}
      - {hostPath: "/srv/{{ .ID }}", containerPath: "/mnt/{{ .Index }}", perDevice: true}
    devices: [{hostPath: /dev/null, containerPath: "/dev/a{{ .Index }}", perDevice: true}]
    cdiDevices: [{name: "example.com/a={{ .ID }}", perDevice: true}]
  - name: example.com/half
    count: 1
    env: {CUT: '{{ slice "é" 0 1 }}'}
`

// The answer is the rendered templates in the kubelet's own types, one
// container response per container request, in the order asked.
func TestAllocateAnswersInTheKubeletTypes(t *testing.T) {
	snap := snapshotOf(t, allocateManifest, 0)
	req := &pluginapi.AllocateRequest{ContainerRequests: []*pluginapi.ContainerAllocateRequest{
		{DevicesIds: []string{"a-2", "a-0"}},
		{DevicesIds: []string{"a-1"}},
	}}
	got, err := allocate(snap, "node-1", req)
	if err != nil {
		t.Fatal(err)
	}
	want := &pluginapi.AllocateResponse{ContainerResponses: []*pluginapi.ContainerAllocateResponse{
		{
			Envs:        map[string]string{"A_IDS": "a-0,a-2", "EMPTY": ""},
			Annotations: map[string]string{"example.com/a.node": "node-1"},
			Mounts: []*pluginapi.Mount{
				{HostPath: "/srv/a", ContainerPath: "/opt/a", ReadOnly: true},
				{HostPath: "/srv/a-0", ContainerPath: "/mnt/0"},
				{HostPath: "/srv/a-2", ContainerPath: "/mnt/1"},
			},
			Devices: []*pluginapi.DeviceSpec{
				{HostPath: "/dev/null", ContainerPath: "/dev/a0", Permissions: "rw"},
				{HostPath: "/dev/null", ContainerPath: "/dev/a1", Permissions: "rw"},
			},
			CdiDevices: []*pluginapi.CDIDevice{{Name: "example.com/a=a-0"}, {Name: "example.com/a=a-2"}},
		},
		{
			Envs:        map[string]string{"A_IDS": "a-1", "EMPTY": ""},
			Annotations: map[string]string{"example.com/a.node": "node-1"},
			Mounts: []*pluginapi.Mount{
				{HostPath: "/srv/a", ContainerPath: "/opt/a", ReadOnly: true},
				{HostPath: "/srv/a-1", ContainerPath: "/mnt/0"},
			},
			Devices:    []*pluginapi.DeviceSpec{{HostPath: "/dev/null", ContainerPath: "/dev/a0", Permissions: "rw"}},
			CdiDevices: []*pluginapi.CDIDevice{{Name: "example.com/a=a-1"}},
		},
	}}
	if !proto.Equal(got, want) {
		t.Fatalf("answer\n%v\nwant\n%v", got, want)
	}
	if _, err := proto.Marshal(got); err != nil {
		t.Errorf("the answer does not encode: %v", err)
	}
}

// Text the kubelet could not decode is refused with an error naming the
// resource, the container request and the item, before gRPC would fail
// to encode it.
func TestAllocateRefusesTextThatIsNotUTF8(t *testing.T) {
	snap := snapshotOf(t, allocateManifest, 1)
	_, err := allocate(snap, "node-1", &pluginapi.AllocateRequest{ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: []string{"half-0"}}}})
	if status.Code(err) != codes.Internal {
		t.Fatalf("error %v, want code Internal", err)
	}
	for _, want := range []string{"example.com/half", "container request 0", "env CUT", "not valid UTF-8"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

// snapshotOf is what a plugin serving resource i of the manifest answers from.
func snapshotOf(t *testing.T, yaml string, i int) *snapshot {
	t.Helper()
	m, err := manifest.Parse([]byte(yaml), CheckDeviceList)
	if err != nil {
		t.Fatal(err)
	}
	return newPlugin(New(Config{DevicePluginDir: t.TempDir(), NodeName: "node-1"}), m.Resources[i]).snapshot()
}
