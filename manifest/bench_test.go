package manifest

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// BenchmarkParse measures loading: the bundled example, and a large
// manifest of 500 resources with 1,000 devices each, every resource with
// env, annotations, a per-device mount, a device node and a CDI name.
func BenchmarkParse(b *testing.B) {
	example, err := os.ReadFile(filepath.Join(examplesDir, "manifest.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	large := largeManifest(500, 1000)
	for _, bc := range []struct {
		name string
		data []byte
	}{
		{"examples/manifest.yaml", example},
		{"500x1000", large},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.data)))
			for b.Loop() {
				m, err := Parse(bc.data)
				if err != nil {
					b.Fatal(err)
				}
				if m.TotalDevices() == 0 {
					b.Fatal("no devices")
				}
			}
		})
	}
}

// BenchmarkReparse measures a reload of the large manifest with one
// resource's device count changed: the other 499 are reused.
func BenchmarkReparse(b *testing.B) {
	prev, err := Parse(largeManifest(500, 1000))
	if err != nil {
		b.Fatal(err)
	}
	changed := bytes.Replace(largeManifest(500, 1000), []byte("count: 1000"), []byte("count: 1001"), 1)
	b.ReportAllocs()
	for b.Loop() {
		m, err := Reparse(changed, prev)
		if err != nil {
			b.Fatal(err)
		}
		if m.TotalDevices() != 500_001 {
			b.Fatalf("%d devices, want 500001", m.TotalDevices())
		}
	}
}

func largeManifest(resources, devices int) []byte {
	var s strings.Builder
	s.WriteString(header)
	for i := range resources {
		fmt.Fprintf(&s, `  - name: example.com/res-%[1]d
    count: %[2]d
    idTemplate: "r%[1]d-dev-{{ .Index }}"
    env:
      RES_%[1]d_IDS: '{{ join .IDs "," }}'
      RES_%[1]d_COUNT: "{{ .Count }}"
    annotations:
      example.com/res-%[1]d: '{{ join .IDs "," }}'
    mounts:
      - hostPath: "/var/lib/res-%[1]d/{{ .ID }}"
        containerPath: "/run/res-%[1]d/{{ .ID }}"
        perDevice: true
    devices:
      - hostPath: /dev/null
        containerPath: "/dev/res-%[1]d-{{ .Index }}"
        perDevice: true
    cdiDevices:
      - name: "example.com/res-%[1]d={{ .ID }}"
        perDevice: true
    topology: {numaNodes: 4}
    allocationPolicy: spread
`, i, devices)
	}
	return []byte(s.String())
}

func TestLargeManifest(t *testing.T) {
	if testing.Short() {
		t.Skip("loads 500,000 devices")
	}
	m := mustParse(t, string(largeManifest(500, 1000)))
	if len(m.Resources) != 500 || m.TotalDevices() != 500_000 {
		t.Fatalf("%d resources, %d devices; want 500, 500000", len(m.Resources), m.TotalDevices())
	}
}
