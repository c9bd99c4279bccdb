package manifest

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"time"
)

// checkSchema reports every unknown field and wrongly typed value in the
// decoded document, where encoding/json would stop at the first. It returns
// false for a value that must go, and removes what it reports, so the rest
// can still be decoded and validated.
func checkSchema(v any, t reflect.Type, path string, errs *ErrorList) bool {
	if v == nil {
		return true // an empty value is the same as an absent one
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == reflect.TypeFor[Duration]() {
		s, ok := v.(string)
		if !ok {
			errs.add(path, "expected a duration string such as \"5s\", got %s", describe(v))
			return false
		}
		// Parse it here: the decoder's own error would carry no path.
		if _, err := time.ParseDuration(s); err != nil {
			errs.add(path, "%q is not a duration; write it like \"5s\" or \"1m30s\"", s)
			return false
		}
		return true
	}
	switch t.Kind() {
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			errs.add(path, "expected a mapping (key: value), got %s", describe(v))
			return false
		}
		fields := jsonFields(t)
		for _, k := range slices.Sorted(maps.Keys(m)) {
			f, ok := fields[k]
			if !ok {
				errs.add(join(path, k), "unknown field%s; fields here are %s", suggest(k, fields), strings.Join(slices.Sorted(maps.Keys(fields)), ", "))
				delete(m, k)
				continue
			}
			if !checkSchema(m[k], f.Type, join(path, k), errs) {
				delete(m, k)
			}
		}
	case reflect.Slice:
		list, ok := v.([]any)
		if !ok {
			errs.add(path, "expected a list, got %s", describe(v))
			return false
		}
		for i, e := range list {
			if !checkSchema(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i), errs) {
				list[i] = nil
			}
		}
	case reflect.Map:
		m, ok := v.(map[string]any)
		if !ok {
			errs.add(path, "expected a mapping (key: value), got %s", describe(v))
			return false
		}
		for _, k := range slices.Sorted(maps.Keys(m)) {
			if !checkSchema(m[k], t.Elem(), fmt.Sprintf("%s[%s]", path, k), errs) {
				// Keep the key with an empty value: its name is still
				// checked, and the map does not look incomplete to the
				// rules that read it (topology.nodeOf must list every device).
				m[k] = nil
			}
		}
	case reflect.String:
		if _, ok := v.(string); !ok {
			hint := ""
			if _, isBool := v.(bool); isBool {
				hint = " (YAML reads unquoted y, n, yes, no, on, off as booleans)"
			}
			errs.add(path, "expected a string, got %s%s; quote it", describe(v), hint)
			return false
		}
	case reflect.Bool:
		if _, ok := v.(bool); !ok {
			errs.add(path, "expected true or false, got %s", describe(v))
			return false
		}
	case reflect.Int:
		f, ok := v.(float64)
		if !ok || f != float64(int64(f)) {
			errs.add(path, "expected a whole number, got %s", describe(v))
			return false
		}
	}
	return true
}

func describe(v any) string {
	switch x := v.(type) {
	case string:
		return fmt.Sprintf("the string %q", x)
	case float64:
		return fmt.Sprintf("the number %v", x)
	case []any:
		return "a list"
	case map[string]any:
		return "a mapping"
	}
	return fmt.Sprintf("%v", v)
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// jsonName is the field's name in the manifest.
func jsonName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	return name
}

func jsonFields(t reflect.Type) map[string]reflect.StructField {
	out := map[string]reflect.StructField{}
	for f := range t.Fields() {
		out[jsonName(f)] = f
	}
	return out
}

// suggest names the known field closest to an unknown one, if any is close.
func suggest(unknown string, fields map[string]reflect.StructField) string {
	best, bestDist := "", 3
	for _, name := range slices.Sorted(maps.Keys(fields)) {
		if d := editDistance(strings.ToLower(unknown), strings.ToLower(name)); d < bestDist {
			best, bestDist = name, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
