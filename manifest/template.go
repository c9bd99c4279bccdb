package manifest

import (
	"bytes"
	"fmt"
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
}

// IDData is what idTemplate sees.
type IDData struct {
	Resource string
	Index    int // 0..count-1
}

// tmpl is a compiled template. Templates without any action are kept as
// their literal text, so rendering them costs nothing; simple ones (see
// simple.go) as pieces to concatenate.
type tmpl struct {
	source  string // as written, to tell identical templates apart
	literal bool
	text    string // what a literal template renders
	pieces  []piece
	needs   kindSet // the fields pieces read
	t       *template.Template
}

// compileTemplate parses src once; name labels parse errors.
func compileTemplate(name, src string) (*tmpl, error) {
	t, err := template.New(name).Funcs(Funcs).Option("missingkey=error").Parse(src)
	if err != nil {
		return nil, fmt.Errorf("template does not parse: %s", cleanTemplateErr(err, name))
	}
	c := &tmpl{source: src, t: t}
	if text, ok := literalText(t); ok {
		c.literal, c.text, c.t = true, text, nil
		return c, nil
	}
	c.pieces, c.needs = simplePieces(t)
	return c, nil
}

// literalText returns what t renders when it has no actions. That is the
// text nodes joined, not the source: comments ("{{/* x */}}") and trim
// markers ("{{- ... -}}") leave no action behind but change the text.
func literalText(t *template.Template) (string, bool) {
	if t.Tree == nil || t.Tree.Root == nil {
		return "", true
	}
	var b strings.Builder
	for _, n := range t.Tree.Root.Nodes {
		text, ok := n.(*parse.TextNode)
		if !ok {
			return "", false
		}
		b.Write(text.Text)
	}
	return b.String(), true
}

// render executes the template into w. data is a ContainerData,
// DeviceData or IDData, or a pointer to one.
func (c *tmpl) render(w *bytes.Buffer, data any) error {
	switch {
	case c.literal:
		w.WriteString(c.text)
		return nil
	case c.pieces != nil && c.writeSimple(w, data):
		return nil
	}
	return c.t.Execute(w, dereference(data))
}

// renderString executes the template and returns the text.
func (c *tmpl) renderString(data any) (string, error) {
	if c.literal {
		return c.text, nil
	}
	var b bytes.Buffer
	if err := c.render(&b, data); err != nil {
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
	return strings.TrimSpace(s)
}

// explainExecErr turns an execution error on sample data into advice.
func explainExecErr(err error, name string, perDevice bool) string {
	s := cleanTemplateErr(err, name)
	for _, field := range []string{"ID", "Index"} {
		if strings.Contains(s, "can't evaluate field "+field+" ") && !perDevice {
			return fmt.Sprintf("does not render: .%s exists only where perDevice: true (per container use .IDs, .Count, .Resource, .Node): %s", field, s)
		}
	}
	if strings.Contains(s, "can't evaluate field") {
		return "does not render: " + s + " (fields are .Resource, .IDs, .Count, .Node; with perDevice: true also .ID, .Index)"
	}
	return "does not render on sample data: " + s
}
