package manifest

import (
	"reflect"
	"strings"
	"testing"
)

func TestDRAValidation(t *testing.T) {
	long := strings.Repeat("a", 33)
	tests := []struct {
		name  string
		items []string
		want  []wantErr
	}{
		{"a valid resource", []string{`name: example.com/fpga
count: 2
api: dra
dra:
  driver: fpga.example.com
  attributes: {model: m, gen: "{{ .Index }}", fast: "true", fw: "1.4.2"}
  capacity: {memory: 16Gi}`}, nil},
		{"the default driver", []string{"name: example.com/fpga\ncount: 1\napi: dra"}, nil},
		{"an unknown api", []string{"name: example.com/fpga\ncount: 1\napi: grpc"},
			[]wantErr{{"resources[0].api", "devicePlugin"}}},
		{"dra without api: dra", []string{"name: example.com/fpga\ncount: 1\ndra: {driver: fpga.example.com}"},
			[]wantErr{{"resources[0].dra", "set api: dra"}}},
		{"a driver that is not a DNS subdomain", []string{"name: example.com/fpga\ncount: 1\napi: dra\ndra: {driver: Fpga_Driver}"},
			[]wantErr{{"resources[0].dra.driver", "DNS subdomain"}}},
		{"a driver too long", []string{"name: example.com/fpga\ncount: 1\napi: dra\ndra: {driver: " + strings.Repeat("a", 60) + ".example.com}"},
			[]wantErr{{"resources[0].dra.driver", "at most 63"}}},
		{"a default driver too long says to set driver", []string{"name: " + strings.Repeat("d", 50) + ".example.com/" + strings.Repeat("n", 20) + "\ncount: 1\napi: dra"},
			[]wantErr{{"resources[0].dra.driver", "set dra.driver"}}},
		{"two resources, one driver", []string{
			"name: example.com/a\ncount: 1\napi: dra\ndra: {driver: x.example.com}",
			"name: example.com/b\ncount: 1\napi: dra\ndra: {driver: x.example.com}"},
			[]wantErr{{"resources[1].dra.driver", "also the driver of resources[0]"}}},
		{"IDs that are not DNS labels", []string{"name: example.com/fpga\nids: [fpga-0, FPGA_1, ok]\napi: dra"},
			[]wantErr{{"resources[0].ids[1]", "not a DNS label"}}},
		{"an idTemplate that renders no DNS label", []string{"name: example.com/fpga\ncount: 3\nidTemplate: 'F{{ .Index }}'\napi: dra"},
			[]wantErr{{"resources[0].idTemplate", "not a DNS label"}}},
		{"a name whose default IDs are no DNS labels", []string{"name: example.com/Big_FPGA\ncount: 1\napi: dra\ndra: {driver: big.example.com}"},
			[]wantErr{{"resources[0].name", "not a DNS label"}}},
		{"reserved attribute names", []string{"name: example.com/fpga\ncount: 1\napi: dra\ndra: {attributes: {index: '1', id: x}}"},
			[]wantErr{{"resources[0].dra.attributes[id]", "reserved"}, {"resources[0].dra.attributes[index]", "reserved"}}},
		{"numaNode is reserved with a topology", []string{"name: example.com/fpga\ncount: 2\ntopology: {numaNodes: 2}\napi: dra\ndra: {attributes: {numaNode: '1'}}"},
			[]wantErr{{"resources[0].dra.attributes[numaNode]", "reserved"}}},
		{"attribute names: C identifiers of at most 32", []string{"name: example.com/fpga\ncount: 1\napi: dra\ndra: {attributes: {1st: a, my-attr: b, " + long + ": c}}"},
			[]wantErr{{"resources[0].dra.attributes[1st]", "C identifier"}, {"resources[0].dra.attributes[" + long + "]", "at most 32"}, {"resources[0].dra.attributes[my-attr]", "C identifier"}}},
		{"a string value over 64", []string{"name: example.com/fpga\ncount: 2\napi: dra\ndra: {attributes: {label: '{{ .ID }}" + strings.Repeat("x", 60) + "'}}"},
			[]wantErr{{"resources[0].dra.attributes[label]", `for device "fpga-0", renders 66 characters`}}},
		{"an attribute that does not render", []string{"name: example.com/fpga\ncount: 1\napi: dra\ndra: {attributes: {x: '{{ .Path }}'}}"},
			[]wantErr{{"resources[0].dra.attributes[x]", "fields are .ID, .Index, .NUMANode"}}},
		{"capacity: quantities", []string{"name: example.com/fpga\ncount: 1\napi: dra\ndra: {capacity: {memory: 16 GB}}"},
			[]wantErr{{"resources[0].dra.capacity[memory]", "not a quantity"}}},
		{"capacity and attribute of one name", []string{"name: example.com/fpga\ncount: 1\napi: dra\ndra: {attributes: {memory: a}, capacity: {memory: 1Gi}}"},
			[]wantErr{{"resources[0].dra.capacity[memory]", "also an attribute"}}},
		{"too many attributes and capacities", []string{"name: example.com/fpga\ncount: 1\napi: dra\ndra:\n  attributes: {" + attrs(20) + "}\n  capacity: {" + caps(11) + "}"},
			[]wantErr{{"resources[0].dra", "at most 32; remove 1"}}},
		{"discover is not served through DRA", []string{"name: example.com/tty\ndiscover: {paths: [/dev/ttyUSB*]}\napi: dra"},
			[]wantErr{{"resources[0].api", "not available with discover"}}},
		{"cdi.spec is not needed", []string{"name: example.com/fpga\ncount: 1\napi: dra\ncdi: {spec: true}\nmounts: [{hostPath: /a, containerPath: '/b/{{ .ID }}', perDevice: true}]"},
			[]wantErr{{"resources[0].cdi.spec", "not needed under api: dra"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(manifestOf(tt.items...)))
			checkErrors(t, err, tt.want)
		})
	}
}

func attrs(n int) string {
	var parts []string
	for i := range n {
		parts = append(parts, "a"+strings.Repeat("x", i)+": v")
	}
	return strings.Join(parts, ", ")
}

func caps(n int) string {
	var parts []string
	for i := range n {
		parts = append(parts, "c"+strings.Repeat("x", i)+": '1'")
	}
	return strings.Join(parts, ", ")
}

func TestTypeAttribute(t *testing.T) {
	tests := []struct {
		in   string
		kind AttributeKind
	}{
		{"true", AttributeBool}, {"false", AttributeBool}, {"True", AttributeString},
		{"42", AttributeInt}, {"-7", AttributeInt}, {"007", AttributeInt}, {"1e3", AttributeString},
		{"99999999999999999999", AttributeString}, // beyond int64
		{"1.4.2", AttributeVersion}, {"2.0.0-rc.1+build.5", AttributeVersion}, {"v1.4.2", AttributeString}, {"1.4", AttributeString},
		{"", AttributeString}, {"virtual-fpga", AttributeString},
	}
	for _, tt := range tests {
		if got := TypeAttribute("a", tt.in); got.Kind != tt.kind {
			t.Errorf("TypeAttribute(%q) is %s, want %s", tt.in, got.Kind, tt.kind)
		}
	}
}

func TestAttributesRender(t *testing.T) {
	r := mustResource(t, `name: example.com/fpga
count: 4
topology: {numaNodes: 2}
api: dra
dra:
  attributes:
    model: virtual-fpga
    gen: "{{ .Index }}"
    numa: "{{ .NUMANode }}"
    big: '{{ if ge .Index 2 }}true{{ else }}false{{ end }}'
    fw: "1.{{ .Index }}.0"
  capacity: {memory: 16Gi}`)
	if r.Driver() != "fpga.example.com" || !r.DRA() {
		t.Fatalf("driver %q, DRA %v", r.Driver(), r.DRA())
	}
	got, err := r.Attributes(3, "n1")
	if err != nil {
		t.Fatal(err)
	}
	want := []Attribute{
		{Name: "big", Kind: AttributeBool, Value: "true", Bool: true},
		{Name: "fw", Kind: AttributeVersion, Value: "1.3.0"},
		{Name: "gen", Kind: AttributeInt, Value: "3", Int: 3},
		{Name: "model", Kind: AttributeString, Value: "virtual-fpga"},
		{Name: "numa", Kind: AttributeInt, Value: "1", Int: 1},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("attributes of fpga-3:\n got %+v\nwant %+v", got, want)
	}
	if c := r.Capacities(); len(c) != 1 || c[0].Name != "memory" || c[0].Value.String() != "16Gi" {
		t.Errorf("capacities %+v", c)
	}
}

func TestDRAWarnings(t *testing.T) {
	m := mustParse(t, manifestOf(
		"name: example.com/a\ncount: 1\napi: dra\nannotations: {example.com/x: v}\npreStartRequired: true",
		"name: example.com/b\ncount: 1\nannotations: {example.com/y: v}"))
	var paths []string
	for _, w := range m.Warnings() {
		paths = append(paths, w.Path)
	}
	if want := []string{"resources[0].annotations", "resources[0].preStartRequired"}; !reflect.DeepEqual(paths, want) {
		t.Errorf("warnings at %v, want %v", paths, want)
	}
}
