package chartdoc

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// Value is one row of the README's table.
type Value struct {
	Path        string // dotted, as --set takes it: image.tag
	Type        string // from the schema
	Default     string // from values.yaml, as markdown
	Description string // the comment above the value in values.yaml
}

// maxInlineDefault is the longest default written in the table; a longer
// one (the example manifest) is left to values.yaml.
const maxInlineDefault = 100

// Values lists the values of values.yaml in its order. A mapping with no
// comment of its own (image:) is a group: each of its keys is a value. Any
// other key is a value and must have a comment; every value must be in the
// schema, and every property of the schema in values.yaml.
func Values(valuesYAML, schemaJSON []byte) ([]Value, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(valuesYAML, &doc); err != nil {
		return nil, fmt.Errorf("values.yaml: %w", err)
	}
	if len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, errors.New("values.yaml: not a mapping")
	}
	var schema map[string]any
	if err := json.Unmarshal(schemaJSON, &schema); err != nil {
		return nil, fmt.Errorf("values.schema.json: %w", err)
	}
	w := walker{root: schema}
	w.group("", doc.Content[0], schema)
	if len(w.errs) > 0 {
		return nil, fmt.Errorf("values.yaml and values.schema.json:\n%w", errors.Join(w.errs...))
	}
	return w.values, nil
}

type walker struct {
	root   map[string]any // the schema, for $ref
	values []Value
	errs   []error
}

func (w *walker) errorf(format string, args ...any) {
	w.errs = append(w.errs, fmt.Errorf(format, args...))
}

// group walks a mapping of values whose schema is s.
func (w *walker) group(prefix string, m *yaml.Node, s map[string]any) {
	props, _ := w.resolve(s)["properties"].(map[string]any)
	seen := map[string]bool{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		key, val := m.Content[i], m.Content[i+1]
		path := key.Value
		if prefix != "" {
			path = prefix + "." + key.Value
		}
		seen[key.Value] = true
		ps, ok := props[key.Value].(map[string]any)
		if !ok {
			w.errorf("%s: not in values.schema.json: add it to the schema", path)
			continue
		}
		description := commentText(key.HeadComment)
		if description == "" && val.Kind == yaml.MappingNode {
			w.group(path, val, ps)
			continue
		}
		if description == "" {
			w.errorf("%s: no comment: say what the value is for above it in values.yaml", path)
			continue
		}
		def, err := defaultText(val)
		if err != nil {
			w.errorf("%s: %v", path, err)
			continue
		}
		w.values = append(w.values, Value{Path: path, Type: w.typeText(ps), Default: def, Description: description})
	}
	for _, name := range slices.Sorted(maps.Keys(props)) {
		// global is Helm's, for subcharts: in the schema so that it is allowed.
		if !seen[name] && !(prefix == "" && name == "global") {
			w.errorf("%s: in values.schema.json but not in values.yaml: give it a default there, with a comment", strings.TrimPrefix(prefix+"."+name, "."))
		}
	}
}

// resolve follows a local $ref (#/definitions/NAME).
func (w *walker) resolve(s map[string]any) map[string]any {
	for range 10 { // a chain longer than that is a loop
		ref, ok := s["$ref"].(string)
		if !ok {
			return s
		}
		defs, _ := w.root["definitions"].(map[string]any)
		next, ok := defs[strings.TrimPrefix(ref, "#/definitions/")].(map[string]any)
		if !ok {
			w.errorf("$ref %q: not in the schema's definitions", ref)
			return map[string]any{}
		}
		s = next
	}
	w.errorf("$ref: too many in a row")
	return map[string]any{}
}

// typeText describes a schema: its type or types, an enum's values, a
// number's bounds.
func (w *walker) typeText(s map[string]any) string {
	s = w.resolve(s)
	if enum, ok := s["enum"].([]any); ok {
		var vs []string
		for _, e := range enum {
			vs = append(vs, literal(e))
		}
		return "one of " + strings.Join(vs, ", ")
	}
	if c, ok := s["const"]; ok {
		return literal(c)
	}
	for _, key := range []string{"anyOf", "oneOf"} {
		if alts, ok := s[key].([]any); ok {
			var ts []string
			for _, a := range alts {
				if as, ok := a.(map[string]any); ok {
					if t := w.typeText(as); !slices.Contains(ts, t) {
						ts = append(ts, t)
					}
				}
			}
			return strings.Join(ts, " or ")
		}
	}
	var types []string
	switch t := s["type"].(type) {
	case string:
		types = []string{t}
	case []any:
		for _, e := range t {
			types = append(types, fmt.Sprint(e))
		}
	}
	if len(types) == 0 {
		return "any"
	}
	for i, t := range types {
		if t != "array" {
			continue
		}
		types[i] = "list"
		if items, ok := s["items"].(map[string]any); ok {
			if it := w.typeText(items); it != "any" && !strings.Contains(it, " ") {
				types[i] = "list of " + it + "s"
			}
		}
	}
	text := strings.Join(types, " or ")
	lo, hasLo := s["minimum"].(float64)
	hi, hasHi := s["maximum"].(float64)
	switch {
	case hasLo && hasHi:
		text += fmt.Sprintf(" (%g to %g)", lo, hi)
	case hasLo:
		text += fmt.Sprintf(" (at least %g)", lo)
	case hasHi:
		text += fmt.Sprintf(" (at most %g)", hi)
	}
	return text
}

// literal writes an enum's or const's value as code.
func literal(v any) string {
	if s, ok := v.(string); ok && s != "" {
		return "`" + s + "`"
	}
	b, _ := json.Marshal(v)
	return "`" + string(b) + "`"
}

// defaultText writes a value's default as code: a scalar as values.yaml
// has it, a list or mapping as compact JSON, or a pointer to values.yaml
// when too long for a table.
func defaultText(n *yaml.Node) (string, error) {
	if n.Kind == yaml.ScalarNode {
		if n.Tag == "!!str" && n.Value == "" {
			return "`\"\"`", nil
		}
		if n.Tag == "!!null" {
			return "`null`", nil
		}
		return "`" + n.Value + "`", nil
	}
	var v any
	if err := n.Decode(&v); err != nil {
		return "", fmt.Errorf("its default: %w", err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("its default as JSON: %w", err)
	}
	if len(b) > maxInlineDefault {
		return "see values.yaml", nil
	}
	return "`" + string(b) + "`", nil
}

// commentText is a comment without its # marks, its lines joined.
func commentText(c string) string {
	var words []string
	for _, line := range strings.Split(c, "\n") {
		line = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "#"))
		if line != "" {
			words = append(words, line)
		}
	}
	return strings.Join(words, " ")
}
