package manifest

import (
	"fmt"
	"hash/fnv"
	"path"
	"regexp"
	"strings"

	"tags.cncf.io/container-device-interface/pkg/parser"
)

// These rules restate what Kubernetes and the CDI spec accept, so a manifest
// that validates is one the kubelet and the container runtime accept too.

var (
	dns1123LabelRe   = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	qualifiedNamePRe = regexp.MustCompile(`^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$`)
	envNameRe        = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

const (
	requestsPrefix    = "requests."
	nativeDomain      = "kubernetes.io/"
	maxQualifiedName  = 63
	maxSubdomain      = 253
	maxDeviceIDLength = 63 // the kubelet checkpoints IDs; they appear in env vars and paths
)

// checkDNSSubdomain returns why s is not an RFC 1123 subdomain, or "".
func checkDNSSubdomain(s string) string {
	if s == "" {
		return "must not be empty"
	}
	if len(s) > maxSubdomain {
		return fmt.Sprintf("is %d characters; at most %d are allowed", len(s), maxSubdomain)
	}
	for _, label := range strings.Split(s, ".") {
		if !dns1123LabelRe.MatchString(label) {
			return fmt.Sprintf("%q is not a DNS subdomain: use lower-case letters, digits, '-' and '.', starting and ending with a letter or digit", s)
		}
	}
	return ""
}

// checkQualifiedName returns why s is not a Kubernetes qualified name
// ([prefix/]name, as annotation keys and label keys are), or "".
func checkQualifiedName(s string) string {
	name := s
	if i := strings.IndexByte(s, '/'); i >= 0 {
		prefix := s[:i]
		name = s[i+1:]
		if strings.Contains(name, "/") {
			return fmt.Sprintf("%q has more than one '/'; write <domain>/<name>", s)
		}
		if prefix == "" {
			return fmt.Sprintf("%q has an empty prefix before '/'", s)
		}
		if why := checkDNSSubdomain(prefix); why != "" {
			return "prefix " + why
		}
	}
	switch {
	case name == "":
		return fmt.Sprintf("%q has an empty name part", s)
	case len(name) > maxQualifiedName:
		return fmt.Sprintf("name part %q is %d characters; at most %d are allowed", name, len(name), maxQualifiedName)
	case !qualifiedNamePRe.MatchString(name):
		return fmt.Sprintf("name part %q must use letters, digits, '-', '_' and '.', starting and ending with a letter or digit", name)
	}
	return ""
}

// checkAnnotationKey returns why s is not an annotation key, or "". Its case
// is lowered first, as the API server does, so "Example.com/Key" passes.
func checkAnnotationKey(s string) string {
	if why := yamlBoolKey(s); why != "" {
		return why
	}
	if why := checkQualifiedName(strings.ToLower(s)); why != "" {
		return fmt.Sprintf("%q is not an annotation key: %s", s, why)
	}
	return ""
}

// checkExtendedResourceName returns why name is not an extended resource
// name the kubelet accepts at registration, or "".
func checkExtendedResourceName(name string) string {
	switch {
	case !strings.Contains(name, "/"):
		return fmt.Sprintf("%q has no domain; write <domain>/<name>, for example example.com/%s", name, name)
	case strings.Contains(name, nativeDomain):
		if domain, _, _ := strings.Cut(name, "/"); domain == "kubernetes.io" || strings.HasSuffix(domain, ".kubernetes.io") {
			return fmt.Sprintf("%q is in the kubernetes.io domain, which is reserved; use a domain you own, for example example.com/%s", name, path.Base(name))
		}
		return fmt.Sprintf("%q contains \"kubernetes.io/\", which the kubelet reserves for native resources wherever it appears; use a domain you own, for example example.com/%s", name, path.Base(name))
	case strings.HasPrefix(name, requestsPrefix):
		return fmt.Sprintf("%q starts with %q, which is reserved for quota names", name, requestsPrefix)
	}
	// The kubelet checks "requests." + name as a qualified name: the domain
	// must leave room for that prefix.
	domain, _, _ := strings.Cut(name, "/")
	why := checkQualifiedName(name)
	if why == "" && len(domain) > maxSubdomain-len(requestsPrefix) {
		why = fmt.Sprintf("the domain is %d characters; at most %d are allowed", len(domain), maxSubdomain-len(requestsPrefix))
	}
	if why != "" {
		return fmt.Sprintf("%q is not an extended resource name (<domain>/<name>): %s", name, strings.TrimPrefix(why, "prefix "))
	}
	return ""
}

// yamlBoolKey explains a map key of "true" or "false": YAML 1.1 reads an
// unquoted key such as N or on as a boolean, which no one means as a name.
func yamlBoolKey(s string) string {
	if s == "true" || s == "false" {
		return fmt.Sprintf("%q is how YAML reads an unquoted y, n, yes, no, on, off, true or false as a key; quote the key you meant, for example \"N\"", s)
	}
	return ""
}

// checkEnvName returns why s is not a portable environment variable name.
func checkEnvName(s string) string {
	if why := yamlBoolKey(s); why != "" {
		return why
	}
	if !envNameRe.MatchString(s) {
		return fmt.Sprintf("%q is not an environment variable name: use letters, digits and '_', not starting with a digit", s)
	}
	return ""
}

// checkDeviceID returns why id cannot be a device ID, or "".
func checkDeviceID(id string) string {
	switch {
	case id == "":
		return "must not be empty"
	case len(id) > maxDeviceIDLength:
		return fmt.Sprintf("%q is %d characters; at most %d are allowed", id, len(id), maxDeviceIDLength)
	}
	for _, r := range id {
		if r <= ' ' || r > '~' {
			return fmt.Sprintf("%q has %q; device IDs are printable ASCII without spaces", id, r)
		}
	}
	return ""
}

// checkCDIName returns why s is not a fully qualified CDI device name
// (vendor/class=name), each part by the CDI library's rules, or "".
func checkCDIName(s string) string {
	const form = "write vendor.com/class=name"
	slash := strings.IndexByte(s, '/')
	eq := strings.IndexByte(s, '=')
	if slash < 0 || eq < 0 || eq < slash {
		return fmt.Sprintf("%q is not a fully qualified CDI name; %s", s, form)
	}
	vendor, class, device := s[:slash], s[slash+1:eq], s[eq+1:]
	for _, err := range []error{parser.ValidateVendorName(vendor), parser.ValidateClassName(class), parser.ValidateDeviceName(device)} {
		if err != nil {
			return fmt.Sprintf("%q: %v; %s", s, err, form)
		}
	}
	return ""
}

// checkAbsPath returns why p is not an absolute, clean path, or "".
func checkAbsPath(p string) string {
	switch {
	case !strings.HasPrefix(p, "/"):
		return fmt.Sprintf("%q is not an absolute path; start it with /", p)
	case path.Clean(p) != p:
		return fmt.Sprintf("%q is not clean; write %q", p, path.Clean(p))
	}
	return ""
}

// checkPermissions returns why p is not a non-empty subset of "rwm", or "".
func checkPermissions(p string) string {
	if p == "" {
		return "must not be empty; allowed are r, w, m (for example rw)"
	}
	for i, r := range p {
		if !strings.ContainsRune("rwm", r) {
			return fmt.Sprintf("%q has %q; allowed are r, w, m", p, r)
		}
		if strings.ContainsRune(p[:i], r) {
			return fmt.Sprintf("%q has %q twice; allowed are r, w, m, each at most once", p, r)
		}
	}
	return ""
}

// checkGlob returns why pattern is not a valid node-name glob, or "". It
// also refuses globs that can never match a node name (a DNS subdomain),
// which would silently serve the resource on no node, or the wrong ones.
func checkGlob(pattern string) string {
	if _, err := path.Match(pattern, ""); err != nil {
		return fmt.Sprintf("%q is not a valid glob (use *, ? and [a-z]): %v", pattern, err)
	}
	for i := 0; i < len(pattern); i++ {
		c := pattern[i]
		switch c {
		case '*', '?':
			continue
		case '[':
			if i+1 < len(pattern) && pattern[i+1] == '!' {
				return fmt.Sprintf("%q: a class is negated with ^ here, not !: [!...] matches '!' (never in a node name) or the listed characters; write [^...]", pattern)
			}
			i = classEnd(pattern, i)
			continue
		case '\\':
			i++ // path.Match accepted the pattern: an escaped character follows
			c = pattern[i]
		}
		if !nodeNameChar(c) {
			hint := "node names use lower-case letters, digits, '-' and '.'"
			if 'A' <= c && c <= 'Z' {
				hint = fmt.Sprintf("node names are lower case; write %q", strings.ToLower(pattern))
			}
			return fmt.Sprintf("%q can never match a node name (it has %q): %s", pattern, c, hint)
		}
	}
	return ""
}

// classEnd returns the index of the ']' closing the class that opens at
// pattern[open] (the pattern is known to be valid).
func classEnd(pattern string, open int) int {
	i := open + 1
	if i < len(pattern) && pattern[i] == '^' {
		i++
	}
	for ; i < len(pattern); i++ {
		switch pattern[i] {
		case '\\':
			i++
		case ']':
			return i
		}
	}
	return len(pattern) - 1
}

// nodeNameChar reports whether c may appear in a node name.
func nodeNameChar(c byte) bool {
	return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '.'
}

// SocketName is the file name of a resource's device plugin socket: the
// resource name with '/' replaced by '_'. Names too long for a unix socket
// path are shortened and given a hash suffix so they stay unique.
func SocketName(resource string) string {
	const maxBase = 60 // leaves room for the kubelet's plugin directory in sun_path
	base := strings.ReplaceAll(resource, "/", "_")
	if len(base)+len(".sock") <= maxBase {
		return base + ".sock"
	}
	h := fnv.New32a()
	h.Write([]byte(resource))
	return fmt.Sprintf("%s-%08x.sock", base[:maxBase-len(".sock")-9], h.Sum32())
}

// checkUSBID returns why id is not a USB vendor or product ID, or "".
func checkUSBID(id string) string {
	if len(id) != 4 || strings.Trim(strings.ToLower(id), "0123456789abcdef") != "" {
		return fmt.Sprintf("%q is not a USB ID: write its 4 hex digits, as lsusb shows them (0403)", id)
	}
	return ""
}
