package discover

import (
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"unicode/utf8"
)

// Spec says which host paths are devices.
type Spec struct {
	// Paths are absolute glob patterns (filepath.Match syntax) as the host
	// sees them, e.g. "/dev/ttyUSB*"; every match is one device.
	Paths []string
	// USB, if not empty, keeps only matches whose USB device has one of
	// these IDs.
	USB []USB
	// Groups, instead of Paths, ties several matches into one device.
	Groups *Groups
}

// USB identifies USB devices: Vendor and Product are 4 hex digits
// (compared case-insensitively); Serial, if set, must equal the device's.
type USB struct{ Vendor, Product, Serial string }

// Groups ties matches into devices by a key taken from their base names.
type Groups struct {
	// Key runs over each match's base name; its first capture group (or
	// the whole match if it has none) is the key. A name it does not match
	// is a Problem.
	Key *regexp.Regexp
	// Paths are absolute glob patterns, as in Spec.Paths.
	Paths []string
}

// Validate reports every way the spec is unusable, joined.
func (s Spec) Validate() error {
	var errs []error
	patterns := s.Paths
	switch {
	case s.Groups != nil && len(s.Paths) > 0:
		errs = append(errs, errors.New("paths and groups are exclusive"))
	case s.Groups != nil:
		patterns = s.Groups.Paths
		if s.Groups.Key == nil {
			errs = append(errs, errors.New("groups: no key"))
		}
		if len(patterns) == 0 {
			errs = append(errs, errors.New("groups: no paths"))
		}
	case len(s.Paths) == 0:
		errs = append(errs, errors.New("no paths"))
	}
	for _, p := range patterns {
		if err := CheckPattern(p); err != nil {
			errs = append(errs, err)
		}
	}
	for i, u := range s.USB {
		if !isHex4(u.Vendor) || !isHex4(u.Product) {
			errs = append(errs, fmt.Errorf("usb[%d]: vendor and product must be 4 hex digits, got %q:%q", i, u.Vendor, u.Product))
		}
	}
	return errors.Join(errs...)
}

// patterns returns the globs to expand, cleaned.
func (s Spec) patterns() []string {
	src := s.Paths
	if s.Groups != nil {
		src = s.Groups.Paths
	}
	out := make([]string, len(src))
	for i, p := range src {
		out[i] = filepath.Clean(p)
	}
	return out
}

// CheckPattern accepts an absolute glob whose every component is valid
// (filepath.Match syntax); the manifest checks its patterns with it.
func CheckPattern(p string) error {
	if !filepath.IsAbs(p) {
		return fmt.Errorf("pattern %q: not an absolute path", p)
	}
	// filepath.Match stops checking at the first mismatch, so it cannot
	// vouch for a pattern; validGlob reads all of it.
	for _, comp := range strings.Split(p, "/") {
		if !validGlob(comp) {
			return fmt.Errorf("pattern %q: %w", p, filepath.ErrBadPattern)
		}
	}
	return nil
}

// validGlob reports whether filepath.Match accepts pattern, whatever the
// name: terms are *, ?, c, \c and [^...] classes of c or c-c, where a class
// char is valid UTF-8 and not '-' or ']' unless escaped, and ']' ends only
// a class with at least one range.
func validGlob(p string) bool {
	for i := 0; i < len(p); i++ {
		switch p[i] {
		case '\\':
			if i++; i == len(p) {
				return false
			}
		case '[':
			i++
			if i < len(p) && p[i] == '^' {
				i++
			}
			for ranges := 0; i >= len(p) || p[i] != ']' || ranges == 0; ranges++ {
				if !classChar(p, &i) {
					return false
				}
				if p[i] == '-' {
					i++
					if !classChar(p, &i) {
						return false
					}
				}
			}
		}
	}
	return true
}

// classChar consumes one class char at p[*i]; the class must go on after it.
func classChar(p string, i *int) bool {
	if *i >= len(p) || p[*i] == '-' || p[*i] == ']' {
		return false
	}
	if p[*i] == '\\' {
		if *i++; *i == len(p) {
			return false
		}
	}
	r, size := utf8.DecodeRuneInString(p[*i:])
	if r == utf8.RuneError && size == 1 {
		return false
	}
	*i += size
	return *i < len(p)
}

func hasMeta(comp string) bool { return strings.ContainsAny(comp, `*?[\`) }

func isHex4(s string) bool {
	if len(s) != 4 {
		return false
	}
	for _, c := range []byte(strings.ToLower(s)) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
