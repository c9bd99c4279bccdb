package manifest

import (
	"fmt"
	"strings"
	"testing"
)

// validationCases is every validation rule, valid and invalid, as
// one-resource (or few-resource) manifests. FuzzParse uses them as seeds.
var validationCases = []struct {
	name  string
	items []string // resource list entries, see manifestOf
	want  []wantErr
}{
	// discover: devices found on the host.
	{"discover: paths", items("name: example.com/serial\ndiscover: {paths: [/dev/ttyUSB*, /dev/ttyACM*], usb: [{vendor: \"0403\", product: \"6001\"}]}"), nil},
	{"discover: groups", items("name: example.com/sound\ndiscover: {groups: {key: 'C(\\d+)', paths: ['/dev/snd/controlC*', '/dev/snd/pcmC*D0p']}}"), nil},
	{"discover: templates see .Path and .Base", items("name: example.com/serial\nidTemplate: 'tty-{{ .Base }}'\ndiscover: {paths: [/dev/ttyUSB*], containerPath: '/dev/serial/{{ .Base }}'}\nmounts: [{hostPath: '/var/lib/x/{{ .Base }}', containerPath: '/x{{ .Path }}', perDevice: true}]"), nil},
	{"discover: with count", items("name: example.com/x\ncount: 1\ndiscover: {paths: [/dev/fuse]}"), errs("resources[0].discover", "is set with count or ids; keep one")},
	{"discover: no paths", items("name: example.com/x\ndiscover: {share: 2}"), errs("resources[0].discover.paths", "is required: list the host paths to match")},
	{"discover: paths and groups", items("name: example.com/x\ndiscover: {paths: [/dev/a], groups: {key: x, paths: [/dev/b]}}"), errs("resources[0].discover", "sets both paths and groups")},
	{"discover: relative pattern", items("name: example.com/x\ndiscover: {paths: [dev/ttyUSB*]}"), errs("resources[0].discover.paths[0]", `"dev/ttyUSB*" is not absolute`)},
	{"discover: unclean pattern", items("name: example.com/x\ndiscover: {paths: [/dev/../dev/fuse]}"), errs("resources[0].discover.paths[0]", `is not clean; write "/dev/fuse"`)},
	{"discover: bad glob", items("name: example.com/x\ndiscover: {paths: ['/dev/tty[']}"), errs("resources[0].discover.paths[0]", "is not a valid glob")},
	{"discover: bad group key", items("name: example.com/x\ndiscover: {groups: {key: 'C(', paths: [/dev/snd/*]}}"), errs("resources[0].discover.groups.key", "is not a regular expression")},
	{"discover: bad USB ID", items("name: example.com/x\ndiscover: {paths: [/dev/ttyUSB*], usb: [{vendor: \"403\", product: \"600g\"}]}"), []wantErr{
		{"resources[0].discover.usb[0].product", `"600g" is not a USB ID`},
		{"resources[0].discover.usb[0].vendor", `"403" is not a USB ID: write its 4 hex digits`},
	}},
	{"discover: share too large", items("name: example.com/x\ndiscover: {paths: [/dev/fuse], share: 1001}"), errs("resources[0].discover.share", "must be at most 1000")},
	{"discover: bad permissions", items("name: example.com/x\ndiscover: {paths: [/dev/fuse], permissions: rx}"), errs("resources[0].discover.permissions", `"rx" has 'x'`)},
	{"discover: no topology", items("name: example.com/x\ndiscover: {paths: [/dev/fuse]}\ntopology: {numaNodes: 1}"), errs("resources[0].topology", "does not apply with discover")},
	{"discover: no healthCheck", items("name: example.com/x\ndiscover: {paths: [/dev/fuse]}\nhealthCheck: {path: /dev/fuse}"), errs("resources[0].healthCheck", "does not apply with discover")},
	{"discover: relative containerPath", items("name: example.com/x\ndiscover: {paths: [/dev/fuse], containerPath: '{{ .Base }}'}"), errs("resources[0].discover.containerPath", `"sample-0" is not an absolute path`)},
	{"discover: containerPath sees no allocation", items("name: example.com/x\ndiscover: {paths: [/dev/fuse], containerPath: '/dev/x{{ .Index }}'}"), errs("resources[0].discover.containerPath", "does not render: at <.Index>: there is no field .Index here (containerPath sees .Path, .Base, .ID and .Resource)")},
	{"discover: idTemplate that does not render", items("name: example.com/x\nidTemplate: '{{ .ID }}'\ndiscover: {paths: [/dev/fuse]}"), errs("resources[0].idTemplate", "does not render: at <.ID>: there is no field .ID here (idTemplate sees .Path, .Base, .Serial")},
	{"discover: literal idTemplate", items("name: example.com/x\nidTemplate: fixed\ndiscover: {paths: [/dev/ttyUSB*]}"), errs("resources[0].idTemplate", `so every match would get the ID "fixed"`)},
	{"discover: idTemplate rendering an invalid ID", items("name: example.com/x\nidTemplate: 'a b{{ .Base }}'\ndiscover: {paths: [/dev/ttyUSB*]}"), errs("resources[0].idTemplate", "renders an invalid ID for a match")},
	{"discover: idTemplate from the USB serial", items("name: example.com/x\nidTemplate: 'ftdi-{{ .Serial }}'\ndiscover: {paths: [/dev/ttyUSB*], usb: [{vendor: '0403', product: '6001'}]}"), nil},
	{"not discover: no .Path", items("name: example.com/x\ncount: 1\ndevices: [{hostPath: '{{ .Path }}', containerPath: /dev/x, perDevice: true}]"), errs("resources[0].devices[0].hostPath", "there is no field .Path here")},

	// Resource names, as the kubelet checks them at registration.
	{"name: domain and name", items("name: example.com/fpga\ncount: 1"), nil},
	{"name: subdomain, dots, dashes and underscores", items("name: a-1.b.example/x_y.Z-9\ncount: 1"), nil},
	{"name: missing", items("count: 1"), errs("resources[0].name", "is required")},
	{"name: no domain", items("name: fpga\ncount: 1"), errs("resources[0].name", `"fpga" has no domain; write <domain>/<name>, for example example.com/fpga`)},
	{"name: kubernetes.io", items("name: kubernetes.io/fpga\ncount: 1"), errs("resources[0].name", "is in the kubernetes.io domain, which is reserved")},
	{"name: kubernetes.io subdomain", items("name: foo.kubernetes.io/x\ncount: 1"), errs("resources[0].name", `"foo.kubernetes.io/x" is in the kubernetes.io domain`)},
	{"name: contains kubernetes.io/", items("name: notkubernetes.io/x\ncount: 1"), errs("resources[0].name", `"notkubernetes.io/x" contains "kubernetes.io/", which the kubelet reserves`)},
	{"name: requests. prefix", items("name: requests.example.com/x\ncount: 1"), errs("resources[0].name", `starts with "requests.", which is reserved`)},
	{"name: upper-case domain", items("name: Example.com/x\ncount: 1"), errs("resources[0].name", "is not a DNS subdomain")},
	{"name: two slashes", items("name: example.com/a/b\ncount: 1"), errs("resources[0].name", "has more than one '/'")},
	{"name: empty name part", items("name: example.com/\ncount: 1"), errs("resources[0].name", "has an empty name part")},
	{"name: name part starts with a dash", items("name: example.com/-x\ncount: 1"), errs("resources[0].name", `name part "-x" must use letters, digits`)},
	{"name: name part of 63", items("name: example.com/" + strings.Repeat("n", 63) + "\ncount: 1\nidTemplate: \"n{{ .Index }}\""), nil},
	{"name: name part of 64", items("name: example.com/" + strings.Repeat("n", 64) + "\ncount: 1\nidTemplate: \"n{{ .Index }}\""), errs("resources[0].name", "is 64 characters; at most 63")},
	{"name: domain too long with requests.", items("name: " + strings.Repeat("d", 60) + "." + strings.Repeat("d", 60) + "." + strings.Repeat("d", 60) + "." + strings.Repeat("d", 60) + ".com/x\ncount: 1"), errs("resources[0].name", "is not an extended resource name (<domain>/<name>): the domain is 247 characters; at most 244 are allowed")},
	{"name: an empty name part is quoted as written", items("name: example.com/\ncount: 1"), errs("resources[0].name", `"example.com/" is not an extended resource name (<domain>/<name>): "example.com/" has an empty name part`)},
	{"name: not unique", items("name: example.com/a\ncount: 1", "name: example.com/b\ncount: 1", "name: example.com/a\nids: [z]"),
		errs("resources[2].name", `"example.com/a" is already declared by resources[0]; resource names must be unique`)},

	// count and ids.
	{"count: 1", items("name: example.com/a\ncount: 1"), nil},
	{"count and ids", items("name: example.com/a\ncount: 2\nids: [p]"), errs("resources[0]", "sets both count and ids; keep one")},
	{"neither count nor ids", items("name: example.com/a"), errs("resources[0].count", "is required: set count (1 or more), ids (an explicit list) or discover")},
	{"count 0", items("name: example.com/a\ncount: 0"), errs("resources[0].count", "must be at least 1 (got 0)")},
	{"count negative", items("name: example.com/a\ncount: -3"), errs("resources[0].count", "must be at least 1 (got -3)")},
	{"ids empty", items("name: example.com/a\nids: []"), errs("resources[0].ids", "must have at least 1 entry")},
	{"ids valid", items("name: example.com/a\nids: [gpu-0, \"GPU:1\", a.b_c~d, \"" + strings.Repeat("i", 63) + "\"]"), nil},
	{"ids duplicate", items("name: example.com/a\nids: [p, q, p, q]"), []wantErr{
		{"resources[0].ids[2]", `device ID "p" appears twice (also at index 0)`},
		{"resources[0].ids[3]", `device ID "q" appears twice (also at index 1)`},
	}},
	{"ids 64 characters", items("name: example.com/a\nids: [\"" + strings.Repeat("i", 64) + "\"]"), errs("resources[0].ids[0]", "is 64 characters; at most 63 are allowed")},
	{"ids with a space", items("name: example.com/a\nids: [\"a b\"]"), errs("resources[0].ids[0]", `"a b" has ' '; device IDs are printable ASCII without spaces`)},
	{"ids with a tab", items("name: example.com/a\nids: [\"a\\tb\"]"), errs("resources[0].ids[0]", `has '\t'`)},
	{"ids not ASCII", items("name: example.com/a\nids: [\"é\"]"), errs("resources[0].ids[0]", "printable ASCII")},
	{"ids empty string", items("name: example.com/a\nids: [p, \"\"]"), errs("resources[0].ids[1]", "must not be empty")},
	{"idTemplate with ids", items("name: example.com/a\nids: [p]\nidTemplate: \"x{{ .Index }}\""), errs("resources[0].idTemplate", "applies only with count")},
	{"idTemplate valid", items("name: example.com/a\ncount: 12\nidTemplate: 'gpu{{ printf \"%02d\" .Index }}-{{ .Resource | replace \"/\" \".\" }}'"), nil},
	{"idTemplate literal with count 1", items("name: example.com/a\ncount: 1\nidTemplate: only"), nil},
	{"idTemplate literal with count 2", items("name: example.com/a\ncount: 2\nidTemplate: only"), errs("resources[0].idTemplate", `has no {{ .Index }}, so all 2 devices get the ID "only"; IDs must be unique`)},
	{"idTemplate without .Index", items("name: example.com/a\ncount: 3\nidTemplate: '{{ .Resource | replace \"/\" \"-\" }}'"),
		errs("resources[0].idTemplate", `renders device 0 and device 1 both as "example.com-a"; device IDs must be unique`)},
	{"idTemplate repeating IDs: one error", items("name: example.com/a\ncount: 1000\nidTemplate: '{{ if eq .Index 0 }}a{{ else }}b{{ end }}'"),
		errs("resources[0].idTemplate", `renders device 1 and device 2 both as "b"`)},
	{"idTemplate renders a space", items("name: example.com/a\ncount: 2\nidTemplate: 'dev {{ .Index }}'"), errs("resources[0].idTemplate", `renders device 0 as an invalid ID: "dev 0" has ' '`)},
	{"idTemplate renders 64 characters", items("name: example.com/a\ncount: 11\nidTemplate: '" + strings.Repeat("i", 62) + "{{ .Index }}'"), errs("resources[0].idTemplate", "renders device 10 as an invalid ID")},
	{"idTemplate renders empty", items("name: example.com/a\ncount: 1\nidTemplate: '{{ if false }}x{{ end }}'"), errs("resources[0].idTemplate", "renders device 0 as an invalid ID: must not be empty")},
	{"idTemplate does not parse", items("name: example.com/a\ncount: 2\nidTemplate: 'x{{ .Index'"), errs("resources[0].idTemplate", "template does not parse")},
	{"idTemplate unknown field", items("name: example.com/a\ncount: 2\nidTemplate: 'x{{ .ID }}'"), errs("resources[0].idTemplate", "at <.ID>: there is no field .ID here (idTemplate sees .Index and .Resource)")},
	{"default IDs too long", items("name: example.com/" + strings.Repeat("n", 62) + "\ncount: 10"), errs("resources[0].name", "default device IDs are <name part>-<index>, and \""+strings.Repeat("n", 62)+"-9\" is 64 characters; at most 63 are allowed; set idTemplate")},

	// A bound on count checked before any ID is generated.
	{"count far over what a resource can serve", items("name: example.com/x\ncount: 5000000"),
		errs("resources[0].count", "5000000 devices are far more than one resource can serve; use fewer devices, or split the resource")},

	// env and annotations.
	{"env names", items("name: example.com/a\ncount: 1\nenv: {A: x, _b: x, C_1: x, lower: x}"), nil},
	{"env name with a dash", items("name: example.com/a\ncount: 1\nenv: {BAD-NAME: x}"), errs("resources[0].env[BAD-NAME]", `"BAD-NAME" is not an environment variable name`)},
	{"env name starting with a digit", items("name: example.com/a\ncount: 1\nenv: {1X: x}"), errs("resources[0].env[1X]", "not starting with a digit")},
	{"env name with a space", items("name: example.com/a\ncount: 1\nenv: {\"A B\": x}"), errs("resources[0].env[A B]", "is not an environment variable name")},
	{"env name empty", items("name: example.com/a\ncount: 1\nenv: {\"\": x}"), errs("resources[0].env[]", "must not be empty")},
	{"annotation keys", items("name: example.com/a\ncount: 1\nannotations: {ids: x, example.com/fpga.ids: x, Example.COM/Key_1: x}"), nil},
	{"annotation key with a space", items("name: example.com/a\ncount: 1\nannotations: {\"a b\": x}"), errs("resources[0].annotations[a b]", `"a b" is not an annotation key: name part "a b" must use`)},
	{"annotation key with an empty prefix", items("name: example.com/a\ncount: 1\nannotations: {/x: x}"), errs("resources[0].annotations[/x]", "has an empty prefix before '/'")},
	{"annotation key with two slashes", items("name: example.com/a\ncount: 1\nannotations: {a/b/c: x}"), errs("resources[0].annotations[a/b/c]", "has more than one '/'")},
	{"annotation key with a bad prefix", items("name: example.com/a\ncount: 1\nannotations: {ex_ample.com/x: x}"), errs("resources[0].annotations[ex_ample.com/x]", "prefix \"ex_ample.com\" is not a DNS subdomain")},
	{"annotation key too long", items("name: example.com/a\ncount: 1\nannotations: {" + strings.Repeat("k", 64) + ": x}"), errs("resources[0].annotations["+strings.Repeat("k", 64)+"]", "is 64 characters; at most 63")},

	// Paths.
	{"paths absolute and clean", items("name: example.com/a\ncount: 2\nmounts: [{hostPath: /, containerPath: /opt/a}, {hostPath: \"/var/{{ .ID }}\", containerPath: \"/dev/a/{{ .ID }}\", perDevice: true}]\ndevices: [{hostPath: /dev/null, containerPath: \"/dev/a{{ .Index }}\", perDevice: true}]"), nil},
	{"mount hostPath relative", items("name: example.com/a\ncount: 1\nmounts: [{hostPath: var/a, containerPath: /a}]"), errs("resources[0].mounts[0].hostPath", `"var/a" is not an absolute path; start it with /`)},
	{"mount containerPath not clean", items("name: example.com/a\ncount: 1\nmounts: [{hostPath: /a, containerPath: /a/../b}]"), errs("resources[0].mounts[0].containerPath", `"/a/../b" is not clean; write "/b"`)},
	{"mount containerPath trailing slash", items("name: example.com/a\ncount: 1\nmounts: [{hostPath: /a, containerPath: /b/}]"), errs("resources[0].mounts[0].containerPath", `"/b/" is not clean; write "/b"`)},
	{"mount containerPath double slash", items("name: example.com/a\ncount: 1\nmounts: [{hostPath: /a, containerPath: //b}]"), errs("resources[0].mounts[0].containerPath", `is not clean`)},
	{"mount paths missing", items("name: example.com/a\ncount: 1\nmounts: [{readOnly: true}]"), []wantErr{
		{"resources[0].mounts[0].containerPath", "is required"},
		{"resources[0].mounts[0].hostPath", "is required"},
	}},
	{"mount path rendering relative", items("name: example.com/a\ncount: 1\nmounts: [{hostPath: \"{{ .Node }}/a\", containerPath: /a}]"), errs("resources[0].mounts[0].hostPath", `"sample-node/a" is not an absolute path`)},
	{"mount path rendering empty", items("name: example.com/a\ncount: 1\nmounts: [{hostPath: /h, containerPath: '{{ .Node | trimPrefix .Node }}'}]"), errs("resources[0].mounts[0].containerPath", `"" is not an absolute path`)},
	{"device containerPath relative", items("name: example.com/a\ncount: 1\ndevices: [{hostPath: /dev/null, containerPath: dev/a}]"), errs("resources[0].devices[0].containerPath", "is not an absolute path")},
	{"device hostPath not clean", items("name: example.com/a\ncount: 1\ndevices: [{hostPath: /dev/./null, containerPath: /dev/a}]"), errs("resources[0].devices[0].hostPath", `write "/dev/null"`)},

	// Permissions.
	{"permissions r, rw, rwm, m, mrw", items("name: example.com/a\ncount: 1\ndevices: [{hostPath: /dev/null, containerPath: /d/1, permissions: r}, {hostPath: /dev/null, containerPath: /d/2, permissions: rw}, {hostPath: /dev/null, containerPath: /d/3, permissions: rwm}, {hostPath: /dev/null, containerPath: /d/4, permissions: m}, {hostPath: /dev/null, containerPath: /d/5, permissions: mrw}]"), nil},
	{"permissions with x", items("name: example.com/a\ncount: 1\ndevices: [{hostPath: /dev/null, containerPath: /d, permissions: rwx}]"), errs("resources[0].devices[0].permissions", `"rwx" has 'x'; allowed are r, w, m`)},
	{"permissions twice", items("name: example.com/a\ncount: 1\ndevices: [{hostPath: /dev/null, containerPath: /d, permissions: rr}]"), errs("resources[0].devices[0].permissions", `"rr" has 'r' twice`)},
	{"permissions upper case", items("name: example.com/a\ncount: 1\ndevices: [{hostPath: /dev/null, containerPath: /d, permissions: RW}]"), errs("resources[0].devices[0].permissions", `"RW" has 'R'`)},

	// CDI names.
	{"cdi names", items("name: example.com/a\ncount: 2\ncdiDevices: [{name: example.com/fpga=all}, {name: \"vendor.example.com/my_class-1=dev.{{ .ID }}:x\", perDevice: true}, {name: 'example.com/fpga={{ join .IDs \"_\" }}'}]"), nil},
	{"cdi name without class", items("name: example.com/a\ncount: 1\ncdiDevices: [{name: nope}]"), errs("resources[0].cdiDevices[0].name", `"nope" is not a fully qualified CDI name; write vendor.com/class=name`)},
	{"cdi name without =", items("name: example.com/a\ncount: 1\ncdiDevices: [{name: example.com/fpga}]"), errs("resources[0].cdiDevices[0].name", "is not a fully qualified CDI name")},
	{"cdi name with = before /", items("name: example.com/a\ncount: 1\ncdiDevices: [{name: example.com=x/y}]"), errs("resources[0].cdiDevices[0].name", "is not a fully qualified CDI name")},
	{"cdi vendor starting with a digit", items("name: example.com/a\ncount: 1\ncdiDevices: [{name: 1x.com/c=d}]"), errs("resources[0].cdiDevices[0].name", `invalid vendor. "1x.com", should start with letter`)},
	{"cdi class with a dot, as the CDI library allows", items("name: example.com/a\ncount: 1\ncdiDevices: [{name: example.com/c.d=e}]"), nil},
	{"cdi class starting with a digit", items("name: example.com/a\ncount: 1\ncdiDevices: [{name: example.com/2c=e}]"), errs("resources[0].cdiDevices[0].name", `invalid class. "2c", should start with letter`)},
	{"cdi device name empty", items("name: example.com/a\ncount: 1\ncdiDevices: [{name: example.com/c=}]"), errs("resources[0].cdiDevices[0].name", `invalid (empty) device name`)},
	{"cdi device name rendering a slash", items("name: example.com/a\nids: [a/b]\ncdiDevices: [{name: \"example.com/c={{ .ID }}\", perDevice: true}]"), errs("resources[0].cdiDevices[0].name", `device name "a/b"`)},
	{"cdi name rendering empty", items("name: example.com/a\ncount: 1\ncdiDevices: [{name: '{{ if false }}x{{ end }}'}]"), errs("resources[0].cdiDevices[0].name", `"" is not a fully qualified CDI name`)},
	{"cdi name missing", items("name: example.com/a\ncount: 1\ncdiDevices: [{perDevice: true}]"), errs("resources[0].cdiDevices[0].name", "is required")},

	// Templates parse and execute on sample data.
	{"templates with every field and function", items(`name: example.com/a
count: 3
env:
  A: '{{ join .IDs "," }}'
  B: '{{ len .IDs }} {{ .Count }} {{ .Node }} {{ .Resource }}'
  C: '{{ .Resource | upper | lower | replace "/" "_" | trimPrefix "example." | trimSuffix "_a" }}'
  D: '{{ printf "%s-%d" .Resource .Count }} {{ "" | default "none" }} {{ index .IDs 0 }}'
mounts: [{hostPath: "/h/{{ .ID }}", containerPath: "/c/{{ .Index }}", perDevice: true}]`), nil},
	{"template .Nope", items("name: example.com/a\ncount: 1\nenv: {A: '{{ .Nope }}'}"), errs("resources[0].env[A]", "at <.Nope>: there is no field .Nope here (fields are .Resource, .IDs, .Count, .Node; with perDevice: true also .ID, .Index)")},
	{"template join without a separator", items("name: example.com/a\ncount: 1\nenv: {A: '{{ join .IDs }}'}"), errs("resources[0].env[A]", "does not render on sample data: at <join>: wrong number of args for join: want 2 got 1")},
	{"template .ID without perDevice", items("name: example.com/a\ncount: 1\nannotations: {a: '{{ .ID }}'}"), errs("resources[0].annotations[a]", ".ID exists only where perDevice: true")},
	{"template .Index without perDevice", items("name: example.com/a\ncount: 1\nmounts: [{hostPath: /h, containerPath: '/c/{{ .Index }}'}]"), errs("resources[0].mounts[0].containerPath", ".Index exists only where perDevice: true")},
	{"template .ID in a per-container cdi name", items("name: example.com/a\ncount: 1\ncdiDevices: [{name: 'example.com/c={{ .ID }}'}]"), errs("resources[0].cdiDevices[0].name", ".ID exists only where perDevice: true")},
	{"template unknown function", items("name: example.com/a\ncount: 1\nenv: {A: '{{ env \"HOME\" }}'}"), errs("resources[0].env[A]", `template does not parse: function "env" not defined`)},
	{"template unclosed", items("name: example.com/a\ncount: 1\nenv: {A: '{{ .IDs'}"), errs("resources[0].env[A]", "template does not parse")},
	{"template failing on sample data", items("name: example.com/a\ncount: 3\nenv: {A: '{{ index .IDs 5 }}'}"), errs("resources[0].env[A]", "does not render on sample data")},
	{"per-device container path the same for two devices", items("name: example.com/a\ncount: 3\nmounts: [{hostPath: '/h/{{ .ID }}', containerPath: /c, perDevice: true}]"),
		errs("resources[0].mounts[0].containerPath", `renders the same path "/c" for two devices; use {{ .ID }} or {{ .Index }} in it, or set perDevice: false`)},
	{"per-device device path the same for two devices", items("name: example.com/a\ncount: 2\ndevices: [{hostPath: /dev/null, containerPath: '/dev/x{{ .Count }}', perDevice: true}]"),
		errs("resources[0].devices[0].containerPath", `renders the same path "/dev/x2" for two devices`)},
	{"per-device path with one device", items("name: example.com/a\ncount: 1\nmounts: [{hostPath: /h, containerPath: /c, perDevice: true}]"), nil},
	{"two mounts on one container path", items("name: example.com/a\ncount: 1\nmounts: [{hostPath: /h, containerPath: /c}, {hostPath: /i, containerPath: /c}]"),
		errs("resources[0].mounts[1].containerPath", `renders "/c", which resources[0].mounts[0].containerPath also uses; container paths must be unique`)},
	{"mount and device on one container path", items("name: example.com/a\ncount: 1\nmounts: [{hostPath: /h, containerPath: /dev/x}]\ndevices: [{hostPath: /dev/null, containerPath: /dev/x}]"),
		errs("resources[0].devices[0].containerPath", "which resources[0].mounts[0].containerPath also uses")},

	// Unhealthy.
	{"unhealthy known", items("name: example.com/a\ncount: 3\nunhealthy: [a-2, a-0]"), nil},
	{"unhealthy unknown", items("name: example.com/a\ncount: 3\nunhealthy: [a-0, a-9]"), errs("resources[0].unhealthy[1]", `"a-9" is not a device of this resource (devices: a-0, a-1, a-2)`)},
	{"unhealthy unknown among many", items("name: example.com/a\ncount: 10\nunhealthy: [b-1]"), errs("resources[0].unhealthy[0]", "(devices: a-0, a-1, a-2, … a-9 (10 in all))")},
	{"unhealthy empty", items("name: example.com/a\ncount: 3\nunhealthy: [\"\"]"), errs("resources[0].unhealthy[0]", "must not be empty")},

	// healthCheck.
	{"healthCheck", items("name: example.com/a\ncount: 2\nhealthCheck: {path: '/run/{{ .ID }}', interval: 100ms}"), nil},
	{"healthCheck shared path and longest interval", items("name: example.com/a\ncount: 2\nhealthCheck: {path: /run/ready, interval: 1h}"), nil},
	{"healthCheck path missing", items("name: example.com/a\ncount: 2\nhealthCheck: {interval: 1s}"), errs("resources[0].healthCheck.path", "is required")},
	{"healthCheck path empty", items("name: example.com/a\ncount: 2\nhealthCheck: {path: \"\"}"), errs("resources[0].healthCheck.path", "is required")},
	{"healthCheck path relative", items("name: example.com/a\ncount: 2\nhealthCheck: {path: 'run/{{ .ID }}'}"), errs("resources[0].healthCheck.path", `for device "a-0", "run/a-0" is not an absolute path`)},
	{"healthCheck literal path relative", items("name: example.com/a\ncount: 2\nhealthCheck: {path: run}"), errs("resources[0].healthCheck.path", `"run" is not an absolute path`)},
	{"healthCheck path unclean for a later device", items("name: example.com/a\nids: [a, b, c, \"..\"]\nhealthCheck: {path: '/run/{{ .ID }}'}"), errs("resources[0].healthCheck.path", `for device "..", "/run/.." is not clean; write "/"`)},
	{"healthCheck path template error", items("name: example.com/a\ncount: 2\nhealthCheck: {path: '/run/{{ .Nope }}'}"), errs("resources[0].healthCheck.path", "there is no field .Nope here")},
	{"healthCheck interval too short", items("name: example.com/a\ncount: 2\nhealthCheck: {path: /x, interval: 99ms}"), errs("resources[0].healthCheck.interval", "99ms is out of range; use between 100ms and 1h0m0s")},
	{"healthCheck interval too long", items("name: example.com/a\ncount: 2\nhealthCheck: {path: /x, interval: 2h}"), errs("resources[0].healthCheck.interval", "2h0m0s is out of range")},
	{"healthCheck interval negative", items("name: example.com/a\ncount: 2\nhealthCheck: {path: /x, interval: -5s}"), errs("resources[0].healthCheck.interval", "-5s is out of range")},

	// topology.
	{"topology numaNodes", items("name: example.com/a\ncount: 4\ntopology: {numaNodes: 4}"), nil},
	{"topology nodeOf", items("name: example.com/a\nids: [p, q]\ntopology: {nodeOf: {p: 0, q: 1023}}"), nil},
	{"topology numaNodes more than devices", items("name: example.com/a\ncount: 3\ntopology: {numaNodes: 4}"), errs("resources[0].topology.numaNodes", "4 NUMA nodes for 3 devices leaves some nodes empty; use at most 3")},
	{"topology numaNodes for one device: singular", items("name: example.com/a\ncount: 1\ntopology: {numaNodes: 2}"), errs("resources[0].topology.numaNodes", "2 NUMA nodes for 1 device leaves some nodes empty; use at most 1")},
	{"topology numaNodes negative", items("name: example.com/a\ncount: 3\ntopology: {numaNodes: -1}"), errs("resources[0].topology.numaNodes", "must be at least 1 (got -1)")},
	{"topology numaNodes too many", items("name: example.com/a\ncount: 3\ntopology: {numaNodes: 1025}"), errs("resources[0].topology.numaNodes", "must be at most 1024 (got 1025)")},
	{"topology empty", items("name: example.com/a\ncount: 3\ntopology: {}"), errs("resources[0].topology", "is empty; set numaNodes or nodeOf, or remove topology")},
	{"topology both", items("name: example.com/a\ncount: 3\ntopology: {numaNodes: 1, nodeOf: {a-0: 0, a-1: 0, a-2: 0}}"), errs("resources[0].topology", "sets both numaNodes and nodeOf; keep one")},
	{"topology nodeOf unknown and missing", items("name: example.com/a\ncount: 3\ntopology: {nodeOf: {a-0: 0, zz: 1}}"), []wantErr{
		{"resources[0].topology.nodeOf", "gives no NUMA node for devices: a-1, a-2; list every device"},
		{"resources[0].topology.nodeOf[zz]", `"zz" is not a device of this resource`},
	}},
	{"topology nodeOf out of range", items("name: example.com/a\nids: [p, q]\ntopology: {nodeOf: {p: -1, q: 1024}}"), []wantErr{
		{"resources[0].topology.nodeOf[p]", "must be at least 0 (got -1)"},
		{"resources[0].topology.nodeOf[q]", "must be at most 1023 (got 1024)"},
	}},

	// allocationPolicy and nodes.
	{"allocationPolicy values", items("name: example.com/a\ncount: 1\nallocationPolicy: packed", "name: example.com/b\ncount: 1\nallocationPolicy: spread", "name: example.com/c\ncount: 1\nallocationPolicy: first"), nil},
	{"allocationPolicy unknown", items("name: example.com/a\ncount: 1\nallocationPolicy: Packed"), errs("resources[0].allocationPolicy", `"Packed" is not allowed; use one of packed, spread, first`)},
	{"nodes globs", items("name: example.com/a\ncount: 1\nnodes: [\"pool-a-*\", \"node-[0-9]?\", exact, \"[^x]*\"]"), nil},
	{"nodes glob unclosed", items("name: example.com/a\ncount: 1\nnodes: [\"pool-[a\"]"), errs("resources[0].nodes[0]", `"pool-[a" is not a valid glob (use *, ? and [a-z])`)},
	{"nodes glob bad escape", items("name: example.com/a\ncount: 1\nnodes: [ok, \"x\\\\\"]"), errs("resources[0].nodes[1]", "is not a valid glob")},
	{"nodes glob empty", items("name: example.com/a\ncount: 1\nnodes: [\"\"]"), errs("resources[0].nodes[0]", "must not be empty")},

	// Clashes a pod asking for two resources would hit.
	{"clash: env var", items("name: example.com/a\ncount: 1\nenv: {SHARED: x}", "name: example.com/b\ncount: 1\nenv: {SHARED: w, OWN: z}"),
		errs("resources[1].env[SHARED]", `env var "SHARED" is also set by resources[0] (example.com/a) to another value; a pod asking for both would get only one of them`)},
	{"no clash: the same env value in two resources", items("name: example.com/a\ncount: 1\nenv: {LICENSE_SERVER: \"lic:27000\"}", "name: example.com/b\ncount: 1\nenv: {LICENSE_SERVER: \"lic:27000\"}"), nil},
	{"clash: the same env template that renders per allocation", items("name: example.com/a\ncount: 1\nenv: {NUM: \"{{ .Count }}\"}", "name: example.com/b\ncount: 1\nenv: {NUM: \"{{ .Count }}\"}"),
		errs("resources[1].env[NUM]", `env var "NUM" is also set by resources[0] (example.com/a) to a value that depends on the allocation`)},
	{"clash: annotation key", items("name: example.com/a\ncount: 1\nannotations: {example.com/k: x}", "name: example.com/b\ncount: 1\nannotations: {example.com/k: z}"),
		errs("resources[1].annotations[example.com/k]", `annotation "example.com/k" is also set by resources[0]`)},
	{"no clash: the same annotation value", items("name: example.com/a\ncount: 1\nannotations: {example.com/k: x}", "name: example.com/b\ncount: 1\nannotations: {example.com/k: x}"), nil},
	{"no clash: the same mount in two resources", items("name: example.com/a\ncount: 1\nmounts: [{hostPath: /a, containerPath: /opt/x}]", "name: example.com/b\ncount: 1\nmounts: [{hostPath: /a, containerPath: /opt/x}]"), nil},
	{"clash: the same mount path, read-only in one", items("name: example.com/a\ncount: 1\nmounts: [{hostPath: /a, containerPath: /opt/x}]", "name: example.com/b\ncount: 1\nmounts: [{hostPath: /a, containerPath: /opt/x, readOnly: true}]"),
		errs("resources[1].mounts[0].containerPath", `container path "/opt/x" is also set by resources[0] (example.com/a) to another value`)},
	{"clash: a mount and a device node at one path", items("name: example.com/a\ncount: 1\nmounts: [{hostPath: /dev/null, containerPath: /opt/x}]", "name: example.com/b\ncount: 1\ndevices: [{hostPath: /dev/null, containerPath: /opt/x}]"),
		errs("resources[1].devices[0].containerPath", `container path "/opt/x" is also set by resources[0] (example.com/a) to another value`)},
	{"clash: mount containerPath", items("name: example.com/a\ncount: 1\nmounts: [{hostPath: /a, containerPath: /opt/x}]", "name: example.com/b\ncount: 1\nmounts: [{hostPath: /b, containerPath: /opt/x}]"),
		errs("resources[1].mounts[0].containerPath", `container path "/opt/x" is also set by resources[0]`)},
	{"clash: device containerPath", items("name: example.com/a\ncount: 1\ndevices: [{hostPath: /dev/null, containerPath: /dev/x}]", "name: example.com/b\ncount: 1\ndevices: [{hostPath: /dev/zero, containerPath: /dev/x}]"),
		errs("resources[1].devices[0].containerPath", `container path "/dev/x" is also set by resources[0]`)},
	{"clash: per-device path beyond the sample", items("name: example.com/a\nids: [x]\nmounts: [{hostPath: /a, containerPath: \"/data/{{ .ID }}\", perDevice: true}]", "name: example.com/b\nids: [p, q, r, x]\nmounts: [{hostPath: /b, containerPath: \"/data/{{ .ID }}\", perDevice: true}]"),
		errs("resources[1].mounts[0].containerPath", `container path "/data/x" (device x) is also set by resources[0] (example.com/a), which has a device with the same ID`)},
	{"no clash: per-device path with the resource in it", items("name: example.com/a\nids: [x]\nmounts: [{hostPath: /a, containerPath: \"/data/{{ .Resource }}/{{ .ID }}\", perDevice: true}]", "name: example.com/b\nids: [p, q, r, x]\nmounts: [{hostPath: /b, containerPath: \"/data/{{ .Resource }}/{{ .ID }}\", perDevice: true}]"),
		nil},
	{"clash: mount against device", items("name: example.com/a\ncount: 1\ndevices: [{hostPath: /dev/null, containerPath: /dev/x}]", "name: example.com/b\ncount: 1\nmounts: [{hostPath: /b, containerPath: /dev/x}]"),
		errs("resources[1].mounts[0].containerPath", `container path "/dev/x" is also set by resources[0]`)},
	{"clash: per-device paths, reported once", items("name: example.com/a\ncount: 3\ndevices: [{hostPath: /dev/null, containerPath: '/dev/accel{{ .Index }}', perDevice: true}]", "name: example.com/b\ncount: 3\ndevices: [{hostPath: /dev/null, containerPath: '/dev/accel{{ .Index }}', perDevice: true}]"),
		errs("resources[1].devices[0].containerPath", `container path "/dev/accel0" is also set by resources[0]`)},
	{"no clash: same host path, different IDs", items("name: example.com/a\ncount: 3\nmounts: [{hostPath: /shared, containerPath: '/a/{{ .ID }}', perDevice: true}]", "name: example.com/b\ncount: 3\nmounts: [{hostPath: /shared, containerPath: '/b/{{ .ID }}', perDevice: true}]"), nil},
	{"clash: reported against the first owner", items("name: example.com/a\ncount: 1\nenv: {X: x}", "name: example.com/b\ncount: 1\nenv: {X: w}", "name: example.com/c\ncount: 1\nenv: {X: z}"), []wantErr{
		{"resources[1].env[X]", "is also set by resources[0]"},
		{"resources[2].env[X]", "is also set by resources[0]"},
	}},
}

func items(list ...string) []string { return list }

func errs(path, msg string) []wantErr { return []wantErr{{path, msg}} }

func TestValidationRules(t *testing.T) {
	for _, tc := range validationCases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(manifestOf(tc.items...)))
			checkErrors(t, err, tc.want)
		})
	}
}

// Checks passed to Parse see every resource's device list and whether it
// has a topology; what they refuse is reported at count or ids, with the
// other errors.
func TestDeviceListChecks(t *testing.T) {
	type seen struct {
		ids      []string
		topology bool
	}
	var calls []seen
	check := func(ids []string, topology bool) error {
		calls = append(calls, seen{ids, topology})
		if len(ids) > 2 {
			return fmt.Errorf("%d devices are too many here", len(ids))
		}
		return nil
	}
	yaml := manifestOf("name: example.com/a\ncount: 3", "name: example.com/b\nids: [p, q, r]\ntopology: {numaNodes: 2}", "name: example.com/c\ncount: 2", "name: example.com/d\ncount: 1\nenv: {BAD-NAME: x}")
	_, err := Parse([]byte(yaml), check)
	checkErrors(t, err, []wantErr{
		{"resources[0].count", "3 devices are too many here"},
		{"resources[1].ids", "3 devices are too many here"},
		{"resources[3].env[BAD-NAME]", "is not an environment variable name"},
	})
	want := []seen{{[]string{"a-0", "a-1", "a-2"}, false}, {[]string{"p", "q", "r"}, true}, {[]string{"c-0", "c-1"}, false}, {[]string{"d-0"}, false}}
	if fmt.Sprint(calls) != fmt.Sprint(want) {
		t.Errorf("checks saw %v, want %v", calls, want)
	}
}
