package manifest

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
	"text/template"
	"text/template/parse"
)

// Funcs is the whole function set templates may call, beyond text/template's
// builtins (printf, len, index, eq, ...). None reads files or the
// environment or runs anything. Argument order is pipeline-friendly, so
// `{{ .ID | replace "-" "_" | upper }}` works.
var Funcs = template.FuncMap{
	// join LIST SEP: the elements of LIST separated by SEP.
	"join": func(list []string, sep string) string { return strings.Join(list, sep) },
	// upper S, lower S: change case.
	"upper": strings.ToUpper,
	"lower": strings.ToLower,
	// replace OLD NEW S: every OLD in S replaced by NEW.
	"replace": func(old, new, s string) string { return strings.ReplaceAll(s, old, new) },
	// trimPrefix PREFIX S, trimSuffix SUFFIX S.
	"trimPrefix": func(prefix, s string) string { return strings.TrimPrefix(s, prefix) },
	"trimSuffix": func(suffix, s string) string { return strings.TrimSuffix(s, suffix) },
	// default DEFAULT VALUE: VALUE, or DEFAULT when VALUE is empty.
	"default": func(def string, value any) string {
		s := fmt.Sprint(value)
		if value == nil || s == "" {
			return def
		}
		return s
	},
}

// ContainerData is what templates rendered once per container see.
type ContainerData struct {
	Resource string   // the resource name, e.g. example.com/fpga
	IDs      []string // allocated device IDs, sorted
	Count    int      // len(IDs)
	Node     string   // node name (NODE_NAME / --node-name)
}

// DeviceData is what perDevice templates see: the container's data plus
// the device being rendered.
type DeviceData struct {
	ContainerData
	ID    string // this device's ID
	Index int    // its position within this allocation (0-based)

	// A discovered device's; seen as .Path and .Base in found scopes, and
	// .Serial and .Identity in idTemplate.
	path, base, serial, identity string
}

// FoundDeviceData is what perDevice templates of a discover: resource see:
// DeviceData plus the device's host path and its base name.
type FoundDeviceData struct {
	DeviceData
	Path string
	Base string
}

// FoundSpecData is SpecData for a discover: resource.
type FoundSpecData struct {
	SpecData
	Path string
	Base string
}

// FoundIDData is IDData for a discover: resource; Index is the match's
// position among the matches. Serial (the USB serial, or "") and Identity
// (usb:…, by-id:…, dev:M:m) stay with a device across replugs, where its
// name may not.
type FoundIDData struct {
	IDData
	Path     string
	Base     string
	Serial   string
	Identity string
}

// SpecData is what the per-device templates of a generated CDI spec see:
// the spec is written once per device, so nothing of an allocation.
type SpecData struct {
	Resource string
	Node     string
	ID       string
}

// IDData is what idTemplate sees.
type IDData struct {
	Resource string
	Index    int // 0..count-1
}

// tmpl is a template parsed once at load.
type tmpl struct {
	source  string // as written, to tell identical templates apart
	literal bool   // no actions: it always renders the same text
	t       *template.Template
	fields  []fieldPart            // non-nil when fields.go can render it
	fast    [len(scopeFields)]bool // by scope: fields.go renders it there
}

// compileTemplate parses src once; name labels parse errors.
func compileTemplate(name, src string) (*tmpl, error) {
	t, err := template.New(name).Funcs(Funcs).Option("missingkey=error").Parse(src)
	if err != nil {
		return nil, fmt.Errorf("template does not parse: %s", cleanTemplateErr(err, name))
	}
	fields := fieldParts(t)
	return &tmpl{source: src, literal: isLiteral(t), t: t, fields: fields, fast: fastScopes(fields)}, nil
}

// isLiteral reports whether t has no actions. Comments ("{{/* x */}}")
// and trim markers leave none behind, so the source is not enough.
func isLiteral(t *template.Template) bool {
	if t.Tree == nil || t.Tree.Root == nil {
		return true
	}
	for _, n := range t.Tree.Root.Nodes {
		if _, ok := n.(*parse.TextNode); !ok {
			return false
		}
	}
	return true
}

// scope is what a template is rendered for, which decides the fields it sees.
type scope int

const (
	forID        scope = iota // idTemplate: IDData
	forContainer              // ContainerData
	forDevice                 // DeviceData
	forSpec                   // SpecData

	// The same for a discover: resource, whose devices have .Path and .Base.
	forFoundID
	forFoundContainer
	forFoundDevice
	forFoundSpec
)

// found is s as a discover: resource sees it.
func (s scope) found() scope { return s + forFoundID }

// renderFor executes the template on d, seen as scope says. text/template
// gets the data by value, as at validation, so `{{ printf "%v" . }}`
// renders the same in both.
func (c *tmpl) renderFor(w *bytes.Buffer, d *DeviceData, s scope) error {
	if c.fast[s] {
		writeParts(w, c.fields, d)
		return nil
	}
	switch s {
	case forDevice:
		return c.t.Execute(w, *d)
	case forContainer, forFoundContainer:
		return c.t.Execute(w, d.ContainerData)
	case forSpec:
		return c.t.Execute(w, SpecData{Resource: d.Resource, Node: d.Node, ID: d.ID})
	case forFoundDevice:
		return c.t.Execute(w, FoundDeviceData{DeviceData: *d, Path: d.path, Base: d.base})
	case forFoundSpec:
		return c.t.Execute(w, FoundSpecData{SpecData: SpecData{Resource: d.Resource, Node: d.Node, ID: d.ID}, Path: d.path, Base: d.base})
	case forFoundID:
		return c.t.Execute(w, FoundIDData{IDData: IDData{Resource: d.Resource, Index: d.Index}, Path: d.path, Base: d.base, Serial: d.serial, Identity: d.identity})
	}
	return c.t.Execute(w, IDData{Resource: d.Resource, Index: d.Index})
}

// renderString executes the template on d, seen as s says, and returns the text.
func (c *tmpl) renderString(d DeviceData, s scope) (string, error) {
	var b bytes.Buffer
	if err := c.renderFor(&b, &d, s); err != nil {
		return "", err
	}
	return b.String(), nil
}

// cleanTemplateErr strips text/template's "template: name:" prefix so the
// message reads well after a YAML path.
func cleanTemplateErr(err error, name string) string {
	s := err.Error()
	s = strings.TrimPrefix(s, "template: ")
	s = strings.TrimPrefix(s, name+":")
	s = strings.ReplaceAll(s, fmt.Sprintf("executing %q ", name), "")
	s = goTypeRe.ReplaceAllString(s, "there is no field .$1 here")
	// text/template's own line:column within the template would read as a
	// second position in the file; "at <.Foo>" says where.
	s = templatePosRe.ReplaceAllString(strings.TrimSpace(s), "")
	return strings.TrimSpace(s)
}

// templatePosRe is the position text/template puts first: "1:3: ", "1: ".
var templatePosRe = regexp.MustCompile(`^\d+(:\d+)?: `)

// goTypeRe finds text/template's mention of our Go types, which mean
// nothing to someone writing a manifest.
var goTypeRe = regexp.MustCompile(`can't evaluate field (\w+) in type [\w.*\[\]]+`)

// explainExecErr turns an execution error on sample data into advice.
func explainExecErr(err error, name string, perDevice bool) string {
	s := cleanTemplateErr(err, name)
	for _, field := range []string{"ID", "Index"} {
		if strings.Contains(s, "there is no field ."+field+" ") && !perDevice {
			return fmt.Sprintf("does not render: .%s exists only where perDevice: true (per container use .IDs, .Count, .Resource, .Node): %s", field, s)
		}
	}
	if strings.Contains(s, "there is no field") {
		return "does not render: " + s + " (fields are .Resource, .IDs, .Count, .Node; with perDevice: true also .ID, .Index)"
	}
	return "does not render on sample data: " + s
}
