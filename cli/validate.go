package cli

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"simple-device-plugin/host"
	"simple-device-plugin/manifest"
)

// validateCommand checks manifest files: exit 0 when all are valid, 1 when
// any is invalid (every error, prefixed by the file name), 2 on usage errors.
func validateCommand(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("validate", stderr)
	fs.Usage = func() { fmt.Fprintln(stderr, "Usage: simple-device-plugin validate FILE...") }
	if err := fs.Parse(args); err != nil {
		return parseFailure(err)
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return exitUsage
	}
	code := exitOK
	for _, file := range fs.Args() {
		m, err := manifest.Load(file, host.CheckDeviceList)
		if err != nil {
			code = exitFailure
			if list := manifest.Errors(err); list != nil {
				for _, e := range list {
					fmt.Fprintf(stderr, "%s: %s\n", file, e.Error())
				}
				continue
			}
			fmt.Fprintf(stderr, "%s: %v\n", file, err)
			continue
		}
		fmt.Fprintf(stdout, "%s: valid: %s\n", file, summary(m))
	}
	return code
}

// summary is a one-line description: resources and their device counts.
func summary(m *manifest.Manifest) string {
	parts := make([]string, len(m.Resources))
	for i, r := range m.Resources {
		parts[i] = fmt.Sprintf("%s=%d", r.Name, len(r.IDs))
	}
	sort.Strings(parts)
	// One line per file, even for a manifest of hundreds of resources.
	const show = 8
	if len(parts) > show {
		parts = append(parts[:show-1], fmt.Sprintf("… and %d more", len(parts)-show+1))
	}
	return fmt.Sprintf("%s, %s (%s)", plural(len(m.Resources), "resource"), plural(m.TotalDevices(), "device"), strings.Join(parts, ", "))
}

// plural writes "1 device", "2 devices".
func plural(n int, noun string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, noun)
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// printManifestErrors prints every problem, one per line, with the file.
func printManifestErrors(w io.Writer, path string, err error) {
	list := manifest.Errors(err)
	if list == nil {
		fmt.Fprintf(w, "%s: %v\n", path, err)
		return
	}
	problems := "problems"
	if len(list) == 1 {
		problems = "problem"
	}
	fmt.Fprintf(w, "%s is invalid (%d %s):\n", path, len(list), problems)
	for _, e := range list {
		fmt.Fprintf(w, "%s: %s\n", path, e.Error())
	}
}
