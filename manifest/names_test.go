package manifest

import (
	"strings"
	"testing"
)

func TestSocketName(t *testing.T) {
	long := "averyveryverylongsubdomain.example.com/" + strings.Repeat("n", 40)
	tests := []struct {
		name     string
		resource string
		want     string
	}{
		{"slash becomes underscore", "example.com/fpga", "example.com_fpga.sock"},
		{"55 characters kept whole", strings.Repeat("d", 42) + ".com/" + strings.Repeat("n", 8), strings.Repeat("d", 42) + ".com_" + strings.Repeat("n", 8) + ".sock"},
		{"long name shortened with a hash", long, long[:46] + "-"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := SocketName(tc.resource)
			if !strings.HasPrefix(got, strings.ReplaceAll(tc.want, "/", "_")) || !strings.HasSuffix(got, ".sock") {
				t.Errorf("SocketName(%q) = %q, want %q...", tc.resource, got, tc.want)
			}
			if len(got) > 60 {
				t.Errorf("SocketName(%q) = %q is %d characters, want at most 60", tc.resource, got, len(got))
			}
			if strings.Contains(got, "/") {
				t.Errorf("SocketName(%q) = %q has a '/'", tc.resource, got)
			}
			if again := SocketName(tc.resource); again != got {
				t.Errorf("SocketName is not stable: %q then %q", got, again)
			}
		})
	}
	// Long names that differ only past the cut still get their own socket.
	seen := map[string]string{}
	for _, suffix := range []string{"a", "b", "c", "aa", "ab"} {
		name := long + suffix
		s := SocketName(name)
		if other, dup := seen[s]; dup {
			t.Errorf("%q and %q share socket %q", name, other, s)
		}
		seen[s] = name
	}
}

func TestManyLongNamesValidate(t *testing.T) {
	// Names sharing a long prefix get distinct shortened sockets, so they
	// are all accepted.
	prefix := "averyveryverylongsubdomain.example.com/" + strings.Repeat("n", 40)
	var items []string
	for _, s := range []string{"a", "b", "c"} {
		items = append(items, "name: "+prefix+s+"\ncount: 1\nidTemplate: \""+s+"{{ .Index }}\"")
	}
	m := mustParse(t, manifestOf(items...))
	if len(m.Resources) != 3 {
		t.Fatalf("got %d resources, want 3", len(m.Resources))
	}
}
