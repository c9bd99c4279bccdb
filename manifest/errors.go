package manifest

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// FieldError is one problem in a manifest, at a YAML path such as
// resources[2].mounts[0].containerPath.
type FieldError struct {
	Path    string
	Message string
}

func (e FieldError) Error() string {
	if e.Path == "" {
		return e.Message
	}
	return e.Path + ": " + e.Message
}

// ErrorList is every problem found in a manifest, sorted by path. Load
// returns one (wrapped) whenever the manifest is invalid; errors.As finds it.
type ErrorList []FieldError

func (l ErrorList) Error() string {
	lines := make([]string, len(l))
	for i, e := range l {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

func (l *ErrorList) add(path, format string, args ...any) {
	*l = append(*l, FieldError{Path: path, Message: fmt.Sprintf(format, args...)})
}

// sorted orders the list by path, comparing list indexes as numbers so that
// resources[2] comes before resources[10], and drops exact duplicates.
func (l ErrorList) sorted() ErrorList {
	sort.SliceStable(l, func(i, j int) bool { return naturalLess(l[i].Path, l[j].Path) })
	return slices.Compact(l)
}

// naturalLess compares strings treating runs of digits as numbers.
func naturalLess(a, b string) bool {
	for a != "" && b != "" {
		da, db := digitPrefix(a), digitPrefix(b)
		if da != "" && db != "" {
			if len(da) != len(db) {
				return len(da) < len(db)
			}
			if da != db {
				return da < db
			}
			a, b = a[len(da):], b[len(db):]
			continue
		}
		if a[0] != b[0] {
			return a[0] < b[0]
		}
		a, b = a[1:], b[1:]
	}
	return len(a) < len(b)
}

// digitPrefix returns the run of digits that s starts with.
func digitPrefix(s string) string {
	return s[:len(s)-len(strings.TrimLeft(s, "0123456789"))]
}
