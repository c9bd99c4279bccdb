package manifest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

// Manifest is a loaded, defaulted, validated and compiled manifest.
type Manifest struct {
	Spec      Spec
	Resources []*Resource
	Hash      string // of the content after defaults, so equivalent YAML hashes alike
}

// Load reads and parses the manifest at path. An invalid manifest gives an
// error that wraps an ErrorList with every problem found.
func Load(path string, checks ...DeviceListCheck) (*Manifest, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	m, err := Parse(data, checks...)
	if err != nil {
		return nil, fmt.Errorf("manifest %s is invalid:\n%w", path, err)
	}
	return m, nil
}

// emptyManifest is the answer to no text, only comments, or a bare "null".
const emptyManifest = "the manifest is empty; start from examples/manifest.yaml"

// Parse loads a manifest from YAML (or JSON): strict decoding, defaults,
// validation and compilation. It returns an ErrorList on any problem.
// checks are applied to every resource's device list.
func Parse(data []byte, checks ...DeviceListCheck) (*Manifest, error) {
	return Reparse(data, nil, checks...)
}

// Reparse is Parse for a reload: a resource whose spec is unchanged from
// prev (which may be nil) reuses prev's compiled form, since compiling
// depends on nothing but the spec. The result is what Parse would return.
func Reparse(data []byte, prev *Manifest, checks ...DeviceListCheck) (*Manifest, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, ErrorList{{Message: emptyManifest}}
	}
	doc, err := oneDocument(data)
	if err != nil {
		line, msg := parseErrorLine(err.Error(), data)
		return nil, ErrorList{{Line: line, Message: msg}}
	}
	m, err := reparse(doc, prev, checks)
	if list := Errors(err); list != nil {
		// The document as loaded: empty ones before it are blanked out,
		// lines kept, so the positions are those of the file.
		return nil, locate(list, doc).inTextOrder()
	}
	return m, err
}

// reparse loads data, a single YAML document.
func reparse(data []byte, prev *Manifest, checks []DeviceListCheck) (*Manifest, error) {
	// YAMLToJSONStrict rejects broken YAML (naming the line) and duplicate keys.
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil, yamlErrors(err, data)
	}
	var doc any
	if err := json.Unmarshal(js, &doc); err != nil {
		return nil, ErrorList{{Message: "the manifest is not a YAML mapping: " + err.Error()}}
	}
	if doc == nil {
		return nil, ErrorList{{Message: emptyManifest}}
	}
	if _, ok := doc.(map[string]any); !ok {
		return nil, ErrorList{{Message: fmt.Sprintf("the manifest must be a mapping with apiVersion, kind and resources, got %s", describe(doc))}}
	}
	var schemaErrs ErrorList
	checkSchema(doc, reflect.TypeFor[Spec](), "", &schemaErrs)
	if len(schemaErrs) > 0 {
		// checkSchema removed what it reported; validate what is left too,
		// so the user sees every problem in one go.
		if js, err = json.Marshal(doc); err != nil {
			return nil, schemaErrs.sorted()
		}
	}
	var spec Spec
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&spec); err != nil {
		if len(schemaErrs) > 0 {
			return nil, schemaErrs.sorted()
		}
		// checkSchema should have caught it; keep the decoder's word as the last say.
		return nil, ErrorList{{Message: "cannot decode the manifest: " + err.Error()}}
	}
	applyDefaults(&spec)
	m, err := compile(spec, prev, checks)
	if len(schemaErrs) == 0 {
		return m, err
	}
	// Drop follow-on errors under a path the schema check already reported
	// (a wrongly typed name is not also "required").
	all := schemaErrs
	for _, e := range Errors(err) {
		if !coveredBy(e.Path, schemaErrs) {
			all = append(all, e)
		}
	}
	return nil, all.sorted()
}

// oneDocument refuses a second YAML document, which the converter would
// silently drop, and blanks the markers of empty documents before the
// manifest, which would make it look empty; lines keep their numbers.
// Scanning lines is enough: "---" and "..." at a line's start always
// mark documents, even inside a block scalar.
func oneDocument(data []byte) ([]byte, error) {
	lines := strings.Split(string(data), "\n")
	var emptyMarkers []int // marker lines before the manifest's content
	seenContent := false   // the manifest's document has content
	ended := false         // and has ended
	documentStart := 0     // line of the latest "---", 0 after "..."
	for i, line := range lines {
		body := strings.TrimRight(line, "\r")
		rest, isStart := cutMarker(body, "---")
		_, isEnd := cutMarker(body, "...")
		if isStart || isEnd {
			if !seenContent {
				emptyMarkers = append(emptyMarkers, i)
			}
			ended = seenContent
			documentStart = 0
			if !isStart {
				continue
			}
			documentStart, body = i+1, rest // "--- {a: 1}" starts a document with content
		}
		if t := strings.TrimSpace(body); t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		if !seenContent {
			seenContent = true
			continue
		}
		if ended {
			start := documentStart
			if start == 0 {
				start = i + 1 // a bare document after "..."
			}
			return nil, fmt.Errorf("line %d: a second YAML document starts here; a manifest is one document, so merge the resources lists", start)
		}
	}
	// Keep a "---" that starts the manifest: it may carry content.
	for k, i := range emptyMarkers {
		if _, isStart := cutMarker(strings.TrimRight(lines[i], "\r"), "---"); isStart && k == len(emptyMarkers)-1 {
			continue
		}
		lines[i] = ""
	}
	return []byte(strings.Join(lines, "\n")), nil
}

// cutMarker reports whether line is the document marker (alone, or
// followed by white space) and returns what follows it.
func cutMarker(line, marker string) (string, bool) {
	rest, ok := strings.CutPrefix(line, marker)
	if !ok || (rest != "" && rest[0] != ' ' && rest[0] != '\t') {
		return "", false
	}
	return rest, true
}

// coveredBy reports whether path is, or is inside, a path in errs.
func coveredBy(path string, errs ErrorList) bool {
	for _, e := range errs {
		if path == e.Path || strings.HasPrefix(path, e.Path+".") || strings.HasPrefix(path, e.Path+"[") {
			return true
		}
	}
	return false
}

// yamlErrors turns the converter's error, one problem per line, into one
// FieldError per problem, keeping the line numbers.
func yamlErrors(err error, data []byte) ErrorList {
	s := err.Error()
	for _, p := range []string{"error converting YAML to JSON: ", "yaml: ", "unmarshal errors:"} {
		s = strings.ReplaceAll(s, p, "")
	}
	var errs ErrorList
	duplicates := false
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		n, msg := parseErrorLine(line, data)
		if strings.Contains(msg, "already set in map") || strings.Contains(msg, "already defined") {
			duplicates = true
			continue // said below, with the path
		}
		errs = append(errs, FieldError{Line: n, Message: "the YAML does not parse: " + msg})
	}
	if duplicates {
		errs = append(errs, duplicateKeys(data)...)
	}
	if len(errs) == 0 {
		errs.add("", "the YAML does not parse: %v", err)
	}
	return errs
}

func applyDefaults(spec *Spec) {
	for i := range spec.Resources {
		r := &spec.Resources[i]
		for j := range r.Devices {
			if r.Devices[j].Permissions == "" {
				r.Devices[j].Permissions = "rw"
			}
		}
		if r.AllocationPolicy == "" {
			r.AllocationPolicy = PolicyPacked
		}
		if d := r.Discover; d != nil {
			if d.Share == 0 {
				d.Share = 1
			}
			if d.Permissions == "" {
				d.Permissions = "rw"
			}
		}
		if r.HealthCheck != nil && r.HealthCheck.Interval.Duration == 0 {
			r.HealthCheck.Interval.Duration = 5 * time.Second
		}
	}
}

// compile validates spec as a whole and builds the compiled resources,
// reusing those of prev (if not nil) whose spec did not change.
func compile(spec Spec, prev *Manifest, checks []DeviceListCheck) (*Manifest, error) {
	var errs ErrorList
	if spec.APIVersion != "" && spec.APIVersion != APIVersion {
		errs.add("apiVersion", "%q is not a version this build knows; known: %s", spec.APIVersion, APIVersion)
	}
	if spec.Kind != "" && spec.Kind != Kind {
		errs.add("kind", "%q is not known; write kind: %s", spec.Kind, Kind)
	}
	validateFields(&spec, &errs)

	m := &Manifest{Spec: spec}
	compiled := map[string]*Resource{}
	if prev != nil {
		for _, r := range prev.Resources {
			compiled[r.Name] = r
		}
	}
	for i := range spec.Resources {
		var r *Resource
		if old := compiled[spec.Resources[i].Name]; old != nil && reflect.DeepEqual(old.Spec, spec.Resources[i]) {
			// A copy, as the old one is being served and specIndex may
			// differ; what it shares is never written after compiling.
			reused := *old
			r = &reused
		} else {
			r = compileResource(spec.Resources[i], fmt.Sprintf("resources[%d]", i), checks, &errs)
		}
		if r != nil {
			r.specIndex = i
			m.Resources = append(m.Resources, r)
		}
	}
	checkAcrossResources(spec, m.Resources, &errs)
	if len(errs) > 0 {
		return nil, errs.sorted()
	}
	canonical, err := json.Marshal(spec)
	if err != nil {
		return nil, fmt.Errorf("hash manifest: %w", err)
	}
	sum := sha256.Sum256(canonical)
	m.Hash = hex.EncodeToString(sum[:8])
	return m, nil
}

// Errors returns the ErrorList inside err, if there is one.
func Errors(err error) ErrorList {
	l, _ := errors.AsType[ErrorList](err)
	return l
}

// Resource returns the compiled resource with the given name, or nil.
func (m *Manifest) Resource(name string) *Resource {
	for _, r := range m.Resources {
		if r.Name == name {
			return r
		}
	}
	return nil
}

// ForNode splits the resources into those served on the named node and
// those whose nodes: globs exclude it.
func (m *Manifest) ForNode(node string) (served, skipped []*Resource) {
	for _, r := range m.Resources {
		if r.ServesNode(node) {
			served = append(served, r)
		} else {
			skipped = append(skipped, r)
		}
	}
	return served, skipped
}

// TotalDevices is the number of devices across all resources.
func (m *Manifest) TotalDevices() int {
	n := 0
	for _, r := range m.Resources {
		n += len(r.IDs)
	}
	return n
}
