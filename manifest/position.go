package manifest

import (
	"regexp"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// Positions are looked up only when a manifest is invalid: the converter
// that loads it keeps no line numbers, so the text is parsed a second time,
// into nodes that have them.

// position is a line and column (1-based) in the manifest's text.
type position struct{ line, column int }

// positions maps every YAML path of the document (resources[0].env[A],
// resources[0].healthCheck.path) to where it starts. A mapping's keys are
// recorded both as fields (.key) and as map entries ([key]), since the
// text does not say which one the schema makes of them.
func positions(data []byte) map[string]position {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil || len(doc.Content) == 0 {
		return nil
	}
	out := map[string]position{}
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				key, value := n.Content[i], n.Content[i+1]
				at := position{key.Line, key.Column}
				if value.Kind == yaml.ScalarNode && value.Line == key.Line {
					at = position{value.Line, value.Column} // point at the value
				}
				field := key.Value
				if path != "" {
					field = path + "." + key.Value
				}
				entry := path + "[" + key.Value + "]"
				out[field], out[entry] = at, at
				walk(value, field)
				walk(value, entry)
			}
		case yaml.SequenceNode:
			for i, item := range n.Content {
				p := path + "[" + strconv.Itoa(i) + "]"
				out[p] = position{item.Line, item.Column}
				walk(item, p)
			}
		case yaml.AliasNode:
			if n.Alias != nil {
				walk(n.Alias, path)
			}
		}
	}
	root := doc.Content[0]
	out[""] = position{root.Line, root.Column}
	walk(root, "")
	return out
}

// locate gives each error the position of its path, or of the nearest
// enclosing path the text has (a missing field is reported where its
// mapping starts). Errors that already have a line keep it.
func locate(errs ErrorList, data []byte) ErrorList {
	var pos map[string]position
	for i := range errs {
		e := &errs[i]
		if e.Line != 0 || e.Path == "" {
			continue
		}
		if pos == nil {
			if pos = positions(data); pos == nil {
				return errs
			}
		}
		for p := e.Path; ; p = parentPath(p) {
			if at, ok := pos[p]; ok {
				e.Line, e.Column = at.line, at.column
				break
			}
			if p == "" {
				break
			}
		}
	}
	return errs
}

// parentPath drops the last element of a YAML path: a.b[2] -> a.b -> a -> "".
func parentPath(p string) string {
	if strings.HasSuffix(p, "]") {
		if i := strings.LastIndexByte(p, '['); i >= 0 {
			return p[:i]
		}
	}
	if i := strings.LastIndexByte(p, '.'); i >= 0 {
		return p[:i]
	}
	return ""
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
