package manifest

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// FieldError is one problem in a manifest, at a YAML path such as
// resources[2].mounts[0].containerPath, and where that path is in the text
// (Line and Column are 1-based; 0 when not known).
type FieldError struct {
	Path    string
	Line    int
	Column  int
	Message string
}

func (e FieldError) Error() string {
	if w := e.Where(); w != "" {
		return w + ": " + e.Message
	}
	return e.Message
}

// Where is the path with its position: "resources[2].count (line 9, column
// 12)", "line 4" for an error of the YAML itself, "" for one of the whole.
func (e FieldError) Where() string {
	at := ""
	switch {
	case e.Line > 0 && e.Column > 0:
		at = fmt.Sprintf("line %d, column %d", e.Line, e.Column)
	case e.Line > 0:
		at = fmt.Sprintf("line %d", e.Line)
	}
	switch {
	case e.Path != "" && at != "":
		return e.Path + " (" + at + ")"
	case e.Path != "":
		return e.Path
	case at != "":
		return at
	}
	return ""
}

// ErrorList is every problem found in a manifest, in the order of the
// text (by path where the text says nothing). Load
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

// inTextOrder orders located errors as they appear in the text, as a
// reader goes through the file; errors of the whole come first.
func (l ErrorList) inTextOrder() ErrorList {
	sort.SliceStable(l, func(i, j int) bool {
		if l[i].Line != l[j].Line {
			return l[i].Line < l[j].Line
		}
		return l[i].Column < l[j].Column
	})
	return l
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
