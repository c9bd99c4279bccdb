package cli

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"simple-device-plugin/host"
	"simple-device-plugin/manifest"
)

func newValidateCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "validate FILE|DIR|- ...",
		Short: "Check manifests and print every problem, each with its file, line and path",
		Long: `validate checks manifests as run would load them and prints every problem
at once: file, line and column, the YAML path, and what to do. A directory
stands for the .yaml, .yml and .json files in it (not below it) that are
manifests (kind: Manifest, or no kind); - reads standard input.
Exit 0 when every manifest is valid, 1 when any is not.`,
		Example: `  simple-device-plugin validate examples/manifest.yaml
  simple-device-plugin validate examples/
  kubectl get configmap simple-device-plugin -o jsonpath='{.data.manifest\.yaml}' | simple-device-plugin validate -`,
		ValidArgsFunction: func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
			return []string{"yaml", "yml", "json"}, cobra.ShellCompDirectiveFilterFileExt
		},
	}
	manifestFlag := newString(cmd.Flags(), "manifest", "", "FILE", "a manifest to check (the same as naming it as an argument)")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			path, err := manifestArg(cmd, args, *manifestFlag)
			if err != nil {
				return err
			}
			args = []string{path}
		} else if cmd.Flags().Changed("manifest") {
			args = append([]string{*manifestFlag}, args...)
		}
		if n := countOf(args, "-"); n > 1 {
			return usageErrorf("- (standard input) given %d times; it can be read once", n)
		}
		files := expandDirs(args)
		ok := true
		for _, f := range files {
			if f.problem != "" {
				fmt.Fprintf(cmd.ErrOrStderr(), "%s: %s\n", f.path, f.problem)
				ok = false
				continue
			}
			if f.skip != "" {
				fmt.Fprintf(cmd.OutOrStdout(), "%s: skipped: %s\n", f.path, f.skip)
				continue
			}
			ok = validateOne(f.path, cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr()) && ok
		}
		if !ok {
			return errReported
		}
		return nil
	}
	return cmd
}

// validateOne checks one manifest: a summary on stdout when valid, every
// problem on stderr when not.
func validateOne(path string, stdin io.Reader, stdout, stderr io.Writer) bool {
	data, name, err := readManifest(path, stdin)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return false
	}
	m, err := manifest.Parse(data, host.CheckDeviceList)
	if err != nil {
		writeProblems(stderr, name, err)
		return false
	}
	fmt.Fprintf(stdout, "%s: valid: %s\n", name, summary(m))
	for _, w := range m.Warnings() {
		fmt.Fprintf(stderr, "%s: warning: %s\n", name, w.Error())
	}
	return true
}

// target is a file validate checks, or skips saying why, or a directory
// it could not use.
type target struct{ path, skip, problem string }

// expandDirs replaces each directory by the YAML and JSON files in it,
// sorted. One that declares another kind (a pod next to the manifests, as
// in examples/) is skipped, and said so; a file named on the command line
// is always checked.
func expandDirs(args []string) []target {
	var files []target
	for _, arg := range args {
		info, err := os.Stat(arg)
		if arg == "-" || err != nil || !info.IsDir() {
			files = append(files, target{path: arg}) // a missing file is reported as a problem of its own
			continue
		}
		entries, err := os.ReadDir(arg)
		if err != nil {
			files = append(files, target{path: arg, problem: fmt.Sprintf("cannot read the directory: %v", err)})
			continue
		}
		found := 0
		for _, e := range entries {
			ext := filepath.Ext(e.Name())
			if e.IsDir() || (ext != ".yaml" && ext != ".yml" && ext != ".json") {
				continue
			}
			file := filepath.Join(arg, e.Name())
			if kind := declaredKind(file); kind != "" && kind != manifest.Kind {
				files = append(files, target{path: file, skip: "kind " + kind + ", not a manifest"})
				continue
			}
			files = append(files, target{path: file})
			found++
		}
		if found == 0 {
			files = append(files, target{path: arg, problem: fmt.Sprintf("no manifests in this directory (.yaml, .yml or .json files of kind %s)", manifest.Kind)})
		}
	}
	return files
}

// declaredKind is the kind a YAML file declares, or "" when it declares
// none or does not parse (then validate says why).
func declaredKind(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	var head struct {
		Kind any `json:"kind"`
	}
	if yaml.Unmarshal(data, &head) != nil {
		return ""
	}
	if k, ok := head.Kind.(string); ok {
		return k
	}
	return ""
}

// countOf counts s in list.
func countOf(list []string, s string) int {
	n := 0
	for _, x := range list {
		if x == s {
			n++
		}
	}
	return n
}

// summary is a one-line description: resources and their device counts.
func summary(m *manifest.Manifest) string {
	parts := make([]string, len(m.Resources))
	for i, r := range m.Resources {
		parts[i] = fmt.Sprintf("%s=%d", r.Name, len(r.IDs))
		if r.Discovers() {
			parts[i] = r.Name + "=discovered on the node"
		}
		if r.DRA() {
			parts[i] += " via DRA"
		}
	}
	slices.Sort(parts)
	// One line per file, even for a manifest of hundreds of resources.
	const show = 8
	if len(parts) > show {
		parts = append(parts[:show-1], fmt.Sprintf("… and %d more", len(parts)-show+1))
	}
	return fmt.Sprintf("%s, %s (%s)", plural(len(m.Resources), "resource"), plural(m.TotalDevices(), "device"), strings.Join(parts, ", "))
}

// plural writes "1 device", "2 devices", "1 entry", "2 entries".
func plural(n int, noun string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, noun)
	}
	if strings.HasSuffix(noun, "y") {
		return fmt.Sprintf("%d %sies", n, noun[:len(noun)-1])
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// writeProblems prints one line per problem, as compilers do:
// FILE:LINE:COLUMN: PATH: MESSAGE, so editors can jump to it.
func writeProblems(w io.Writer, name string, err error) {
	list := manifest.Errors(err)
	if list == nil {
		fmt.Fprintf(w, "%s: %v\n", name, err)
		return
	}
	for _, e := range list {
		at := name
		if e.Line > 0 {
			at += fmt.Sprintf(":%d", e.Line)
			if e.Column > 0 {
				at += fmt.Sprintf(":%d", e.Column)
			}
		}
		if e.Path != "" {
			at += ": " + e.Path
		}
		fmt.Fprintf(w, "%s: %s\n", at, e.Message)
	}
}

// printManifestErrors is writeProblems under a line that says how many.
func printManifestErrors(w io.Writer, name string, err error) {
	if list := manifest.Errors(err); list != nil {
		fmt.Fprintf(w, "%s is invalid (%s):\n", name, plural(len(list), "problem"))
	}
	writeProblems(w, name, err)
}
