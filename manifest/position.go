package manifest

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// Positions are looked up only when a manifest is invalid: the converter
// that loads it keeps no line numbers, so the text is parsed a second time,
// into nodes that have them, and each error's path is followed down them.

// position is a line and column (1-based) in the manifest's text.
type position struct{ line, column int }

// locate gives each error the position of its path, or of the nearest
// enclosing path the text has (a missing field is reported where its
// mapping starts). Errors that already have a line keep it. data is the
// manifest as the loader read it: one document.
func locate(errs ErrorList, data []byte) ErrorList {
	var root *yaml.Node
	for i := range errs {
		e := &errs[i]
		if e.Line != 0 || e.Path == "" {
			continue
		}
		if root == nil {
			var doc yaml.Node
			if err := yaml.Unmarshal(data, &doc); err != nil || len(doc.Content) == 0 {
				return errs
			}
			root = doc.Content[0]
		}
		at := find(root, splitPath(e.Path), strings.HasPrefix(e.Message, "unknown field"))
		e.Line, e.Column = at.line, at.column
	}
	return errs
}

// find descends from n along path as far as the text goes and returns
// where it got: the value of the last key found (its key instead, when
// atKey or when the value starts on a later line), or the item.
func find(n *yaml.Node, path []string, atKey bool) position {
	at := position{n.Line, n.Column}
	for _, seg := range path {
		if n.Kind == yaml.AliasNode && n.Alias != nil {
			n = n.Alias
		}
		next := (*yaml.Node)(nil)
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				if key := n.Content[i]; key.Value == seg {
					next = n.Content[i+1]
					at = position{key.Line, key.Column}
					if !atKey && next.Kind == yaml.ScalarNode && next.Line == key.Line {
						at = position{next.Line, next.Column}
					}
					break
				}
			}
		case yaml.SequenceNode:
			if k, err := strconv.Atoi(seg); err == nil && k >= 0 && k < len(n.Content) {
				next = n.Content[k]
				at = position{next.Line, next.Column}
			}
		}
		if next == nil {
			return at
		}
		n = next
	}
	return at
}

// mapFields are the fields whose keys are names the user chooses (written
// env[NAME] in paths), not fields of the schema.
var mapFields = map[string]bool{"env": true, "annotations": true, "nodeOf": true}

// duplicateKeys finds every key that appears twice in a mapping, with
// its path and where it appears again.
func duplicateKeys(data []byte) ErrorList {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil || len(doc.Content) == 0 {
		return nil
	}
	var errs ErrorList
	var walk func(n *yaml.Node, path, field string)
	walk = func(n *yaml.Node, path, field string) {
		switch n.Kind {
		case yaml.MappingNode:
			first := map[string]*yaml.Node{}
			for i := 0; i+1 < len(n.Content); i += 2 {
				key := n.Content[i]
				p := path + "." + key.Value
				if path == "" {
					p = key.Value
				}
				if mapFields[field] {
					p = path + "[" + key.Value + "]"
				}
				if prev, dup := first[key.Value]; dup {
					errs = append(errs, FieldError{Path: p, Line: key.Line, Column: key.Column,
						Message: fmt.Sprintf("%q appears twice in this mapping (first at line %d); keep one", key.Value, prev.Line)})
					continue
				}
				first[key.Value] = key
				walk(n.Content[i+1], p, key.Value)
			}
		case yaml.SequenceNode:
			for i, item := range n.Content {
				walk(item, path+"["+strconv.Itoa(i)+"]", "")
			}
		}
	}
	walk(doc.Content[0], "", "")
	return errs
}

// splitPath turns resources[0].env[A.B].path into its keys and indexes:
// resources, 0, env, A.B, path.
func splitPath(p string) []string {
	var out []string
	for p != "" {
		switch p[0] {
		case '.':
			p = p[1:]
		case '[':
			end := strings.IndexByte(p, ']')
			if end < 0 {
				return append(out, p[1:])
			}
			out = append(out, p[1:end])
			p = p[end+1:]
		default:
			end := strings.IndexAny(p, ".[")
			if end < 0 {
				end = len(p)
			}
			out = append(out, p[:end])
			p = p[end:]
		}
	}
	return out
}

// yamlLineRe finds the line number in the YAML library's messages.
var yamlLineRe = regexp.MustCompile(`^line (\d+): `)

// parseErrorLine takes the line number out of a YAML syntax error. The
// library reports the line of a parser error (as opposed to a scanner
// error) counted from 0, one before the line at fault; and an error found
// at the end of the text names the line after the last one.
func parseErrorLine(msg string, data []byte) (int, string) {
	m := yamlLineRe.FindStringSubmatch(msg)
	if m == nil {
		return 0, msg
	}
	line, _ := strconv.Atoi(m[1])
	msg = msg[len(m[0]):]
	if strings.HasPrefix(msg, "did not find expected") {
		line++
	}
	if last := strings.Count(strings.TrimRight(string(data), "\n\r\t "), "\n") + 1; line > last {
		line = last
	}
	return line, msg
}
