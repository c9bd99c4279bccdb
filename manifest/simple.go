package manifest

import (
	"bytes"
	"strconv"
	"text/template"
	"text/template/parse"
)

// A simple template is text, plain field references ({{ .ID }},
// {{ .Index }}, {{ .Resource }}, {{ .Node }}, {{ .Count }}) and
// {{ join .IDs "sep" }}: what nearly every manifest writes. Rendering one
// by concatenation gives exactly text/template's output (strings as they
// are, ints in decimal) without its reflection and allocations, which
// matters at Allocate and when generating a large count of IDs. Anything
// else goes through text/template.

type pieceKind uint8

const (
	pieceText pieceKind = iota
	pieceResource
	pieceNode
	pieceCount
	pieceJoinIDs // text is the separator
	pieceID
	pieceIndex
)

// kindSet is a set of piece kinds, bit k for kind k.
type kindSet uint8

func (k pieceKind) bit() kindSet { return 1 << k }

// piece is one part of a simple template.
type piece struct {
	kind pieceKind
	text string
}

var fieldPieces = map[string]pieceKind{
	"Resource": pieceResource,
	"Node":     pieceNode,
	"Count":    pieceCount,
	"ID":       pieceID,
	"Index":    pieceIndex,
}

// simplePieces splits t into pieces, or returns nil when t is not simple.
// needs is the set of fields the pieces read.
func simplePieces(t *template.Template) (pieces []piece, needs kindSet) {
	if t.Tree == nil || t.Tree.Root == nil {
		return nil, 0
	}
	for _, n := range t.Tree.Root.Nodes {
		switch n := n.(type) {
		case *parse.TextNode:
			pieces = append(pieces, piece{kind: pieceText, text: string(n.Text)})
		case *parse.ActionNode:
			p, ok := simpleAction(n.Pipe)
			if !ok {
				return nil, 0
			}
			pieces = append(pieces, p)
			needs |= p.kind.bit()
		default:
			return nil, 0
		}
	}
	return pieces, needs
}

// simpleAction recognises {{ .Field }} and {{ join .IDs "sep" }}.
func simpleAction(pipe *parse.PipeNode) (piece, bool) {
	if pipe == nil || len(pipe.Decl) > 0 || pipe.IsAssign || len(pipe.Cmds) != 1 {
		return piece{}, false
	}
	args := pipe.Cmds[0].Args
	switch len(args) {
	case 1:
		f, ok := args[0].(*parse.FieldNode)
		if !ok || len(f.Ident) != 1 {
			return piece{}, false
		}
		kind, ok := fieldPieces[f.Ident[0]]
		return piece{kind: kind}, ok
	case 3:
		fn, ok1 := args[0].(*parse.IdentifierNode)
		list, ok2 := args[1].(*parse.FieldNode)
		sep, ok3 := args[2].(*parse.StringNode)
		if ok1 && ok2 && ok3 && fn.Ident == "join" && len(list.Ident) == 1 && list.Ident[0] == "IDs" {
			return piece{kind: pieceJoinIDs, text: sep.Text}, true
		}
	}
	return piece{}, false
}

// simpleData is the template data a simple template can read, and which
// of it there is (ContainerData has no .ID, IDData no .IDs).
type simpleData struct {
	resource, node, id string
	ids                []string
	count, index       int
	has                kindSet
}

const (
	containerFields = kindSet(1)<<pieceResource | 1<<pieceNode | 1<<pieceCount | 1<<pieceJoinIDs
	deviceFields    = kindSet(1)<<pieceID | 1<<pieceIndex // what only perDevice templates have
)

func simpleDataOf(data any) (simpleData, bool) {
	switch d := data.(type) {
	case *ContainerData:
		return simpleData{resource: d.Resource, node: d.Node, ids: d.IDs, count: d.Count, has: containerFields}, true
	case ContainerData:
		return simpleDataOf(&d)
	case *DeviceData:
		s, _ := simpleDataOf(&d.ContainerData)
		s.id, s.index = d.ID, d.Index
		s.has |= pieceID.bit() | pieceIndex.bit()
		return s, true
	case DeviceData:
		return simpleDataOf(&d)
	case *IDData:
		return simpleData{resource: d.Resource, index: d.Index, has: pieceResource.bit() | pieceIndex.bit()}, true
	case IDData:
		return simpleDataOf(&d)
	}
	return simpleData{}, false
}

// writeSimple renders a simple template into w. It writes nothing and
// returns false when data lacks a field the template reads: text/template
// then gives the error that explains it.
func (c *tmpl) writeSimple(w *bytes.Buffer, data any) bool {
	d, ok := simpleDataOf(data)
	if !ok || c.needs&^d.has != 0 {
		return false
	}
	for _, p := range c.pieces {
		switch p.kind {
		case pieceText:
			w.WriteString(p.text)
		case pieceResource:
			w.WriteString(d.resource)
		case pieceNode:
			w.WriteString(d.node)
		case pieceID:
			w.WriteString(d.id)
		case pieceCount:
			w.Write(strconv.AppendInt(w.AvailableBuffer(), int64(d.count), 10))
		case pieceIndex:
			w.Write(strconv.AppendInt(w.AvailableBuffer(), int64(d.index), 10))
		case pieceJoinIDs:
			for i, id := range d.ids {
				if i > 0 {
					w.WriteString(p.text)
				}
				w.WriteString(id)
			}
		}
	}
	return true
}

// dereference turns the pointers Render passes (so that boxing them costs
// nothing) back into the values templates have always seen, so that, for
// example, {{ printf "%v" . }} prints the same either way.
func dereference(data any) any {
	switch d := data.(type) {
	case *ContainerData:
		return *d
	case *DeviceData:
		return *d
	case *IDData:
		return *d
	}
	return data
}
