package manifest

import (
	"bytes"
	"slices"
	"strconv"
	"text/template"
	"text/template/parse"
)

// Templates made of text, plain field references ("/dev/fpga{{ .Index }}")
// and `join .IDs SEP` are what nearly every manifest writes, and Allocate
// renders them once per allocated device: through text/template that is
// most of the cost of a large allocation (see docs/performance.md). Such a
// template is rendered here by concatenation, with exactly text/template's
// output (TestFieldTemplatesMatchTextTemplate). Anything else goes through
// text/template.

// fieldPart is text, or the field it names when field is not "" (with
// field "join", the IDs joined by text).
type fieldPart struct {
	text, field string
}

// fieldParts splits t into parts, or returns nil when t is anything but
// text and single-field references.
func fieldParts(t *template.Template) []fieldPart {
	if t.Tree == nil || t.Tree.Root == nil {
		return nil
	}
	var parts []fieldPart
	for _, n := range t.Tree.Root.Nodes {
		switch n := n.(type) {
		case *parse.TextNode:
			parts = append(parts, fieldPart{text: string(n.Text)})
		case *parse.ActionNode:
			p := n.Pipe
			if len(p.Decl) > 0 || len(p.Cmds) != 1 {
				return nil
			}
			if sep, ok := joinIDs(p.Cmds[0].Args); ok {
				parts = append(parts, fieldPart{text: sep, field: "join"})
				continue
			}
			if len(p.Cmds[0].Args) != 1 {
				return nil
			}
			f, ok := p.Cmds[0].Args[0].(*parse.FieldNode)
			if !ok || len(f.Ident) != 1 {
				return nil
			}
			switch f.Ident[0] {
			case "ID", "Index", "Resource", "Node", "Count", "Path", "Base", "Serial", "Identity":
				parts = append(parts, fieldPart{field: f.Ident[0]})
			default:
				return nil
			}
		default:
			return nil
		}
	}
	return parts
}

// joinIDs reports whether args are `join .IDs "SEP"`, and returns SEP.
func joinIDs(args []parse.Node) (string, bool) {
	if len(args) != 3 {
		return "", false
	}
	fn, ok1 := args[0].(*parse.IdentifierNode)
	f, ok2 := args[1].(*parse.FieldNode)
	sep, ok3 := args[2].(*parse.StringNode)
	if !ok1 || !ok2 || !ok3 || fn.Ident != "join" || len(f.Ident) != 1 || f.Ident[0] != "IDs" {
		return "", false
	}
	return sep.Text, true
}

// scopeFields are the fields each scope's data has (join reads .IDs).
var scopeFields = [...][]string{
	forID:             {"Resource", "Index"},
	forContainer:      {"Resource", "Node", "Count", "join"},
	forDevice:         {"Resource", "Node", "Count", "join", "ID", "Index"},
	forSpec:           {"Resource", "Node", "ID"},
	forFoundID:        {"Resource", "Index", "Path", "Base", "Serial", "Identity"},
	forFoundContainer: {"Resource", "Node", "Count", "join"},
	forFoundDevice:    {"Resource", "Node", "Count", "join", "ID", "Index", "Path", "Base"},
	forFoundSpec:      {"Resource", "Node", "ID", "Path", "Base"},
}

// fastScopes says, by scope, whether parts can be written for it: every
// field they name is there. Worked out once, at load.
func fastScopes(parts []fieldPart) [len(scopeFields)]bool {
	var fast [len(scopeFields)]bool
	if parts == nil {
		return fast
	}
	for s, fields := range scopeFields {
		fast[s] = true
		for _, p := range parts {
			if p.field != "" && !slices.Contains(fields, p.field) {
				fast[s] = false
			}
		}
	}
	return fast
}

// writeParts writes parts for d.
func writeParts(w *bytes.Buffer, parts []fieldPart, d *DeviceData) {
	for _, p := range parts {
		switch p.field {
		case "":
			w.WriteString(p.text)
		case "ID":
			w.WriteString(d.ID)
		case "Index":
			w.Write(strconv.AppendInt(w.AvailableBuffer(), int64(d.Index), 10))
		case "Resource":
			w.WriteString(d.Resource)
		case "Node":
			w.WriteString(d.Node)
		case "Count":
			w.Write(strconv.AppendInt(w.AvailableBuffer(), int64(d.Count), 10))
		case "Path":
			w.WriteString(d.path)
		case "Base":
			w.WriteString(d.base)
		case "Serial":
			w.WriteString(d.serial)
		case "Identity":
			w.WriteString(d.identity)
		case "join":
			for i, id := range d.IDs {
				if i > 0 {
					w.WriteString(p.text)
				}
				w.WriteString(id)
			}
		}
	}
}
