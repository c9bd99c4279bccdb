package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"
)

// The README is tried as a new user would try it: in a fresh copy of the
// repository, every command of its sh blocks (and of docs/*.md) is run as
// written, and the output it shows after a command is compared with what
// the command prints. Commands that cannot run here are listed in
// notRunHere, each with the reason and what is checked instead.

var updateReadme = flag.Bool("update-readme", false, "rewrite the command outputs shown in README.md")

// docCommand is one command of a fenced sh block.
type docCommand struct {
	file string
	line int
	text string
	// output is the ```text block after the command marked with
	// outputMarker, if any: the command prints exactly that (up to temp
	// dirs and the manifest hash).
	output *shownOutput
}

type shownOutput struct {
	start, end int // line numbers (1-based) of the block's content: [start, end)
	text       string
}

const outputMarker = "<!-- readme-check: output of the command above -->"

// notRun is a command the test does not run: prefix, why, and what is
// checked instead.
type notRun struct {
	prefix string
	reason string
	check  func(t *testing.T, repo, command string)
}

// notRunHere are the commands not run by the test.
var notRunHere = []notRun{
	{"make test", "runs every test, this one included", checkMakeTarget},
	{"make image", "builds a container image: slow, and the image is for a cluster", checkMakeTarget},
	{"kubectl ", "needs a cluster", checkKubectlFiles},
	{"helm ", "needs a cluster", checkHelmChart},
}

func TestREADME(t *testing.T) {
	if testing.Short() {
		t.Skip("runs every command of the README")
	}
	docs, _ := filepath.Glob("docs/*.md")
	docs = append([]string{"README.md"}, docs...)
	var commands []docCommand
	for _, doc := range docs {
		commands = append(commands, extractCommands(t, doc)...)
	}
	// The two commands the README promises first.
	var readme []string
	for _, c := range commands {
		if c.file == "README.md" {
			readme = append(readme, c.text)
		}
	}
	if len(readme) < 2 || readme[0] != "go run . simulate --manifest examples/manifest.yaml" || readme[1] != "make test" {
		t.Fatalf("the README's first two commands are %q; want the simulate command and make test", readme[:min(2, len(readme))])
	}

	repo := freshCopy(t)
	for _, c := range commands {
		name := fmt.Sprintf("%s:%d %s", c.file, c.line, c.text)
		if skip := skipReason(c.text); skip != nil {
			t.Logf("not run: %s (%s)", name, skip.reason)
			skip.check(t, repo, c.text)
			continue
		}
		start := time.Now()
		stdout, stderr, err := runShell(repo, c.text)
		if err != nil {
			t.Errorf("%s: %v\nstdout:\n%s\nstderr:\n%s", name, err, stdout, stderr)
			continue
		}
		t.Logf("ran %s (%v)", name, time.Since(start).Round(time.Millisecond))
		if c.output != nil {
			checkOutput(t, c, stdout)
		}
	}
}

func skipReason(command string) *notRun {
	for i := range notRunHere {
		if strings.HasPrefix(command, notRunHere[i].prefix) {
			return &notRunHere[i]
		}
	}
	return nil
}

// extractCommands reads the commands of every ```sh (or bash, shell) block
// of a markdown file, joining continued lines and leaving out comments.
func extractCommands(t *testing.T, file string) []docCommand {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	var out []docCommand
	inShell, inOther := false, false
	var pending strings.Builder
	pendingLine := 0
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		trimmed := strings.TrimSpace(line)
		switch {
		case !inShell && !inOther && strings.HasPrefix(trimmed, "```"):
			lang := strings.TrimPrefix(trimmed, "```")
			if lang == "sh" || lang == "bash" || lang == "shell" {
				inShell = true
			} else {
				inOther = true
			}
			continue
		case (inShell || inOther) && trimmed == "```":
			if pending.Len() > 0 {
				t.Errorf("%s:%d: a command continues past the end of its block", file, pendingLine)
			}
			inShell, inOther = false, false
			continue
		case trimmed == outputMarker:
			if len(out) == 0 || i+1 >= len(lines) || strings.TrimSpace(lines[i+1]) != "```text" {
				t.Fatalf("%s:%d: %s must follow a command and come right before a ```text block", file, i+1, outputMarker)
			}
			start := i + 2
			end := start
			for end < len(lines) && strings.TrimSpace(lines[end]) != "```" {
				end++
			}
			out[len(out)-1].output = &shownOutput{start: start + 1, end: end + 1, text: strings.Join(lines[start:end], "\n") + "\n"}
			continue
		}
		if !inShell || trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		if strings.HasPrefix(trimmed, "$ ") {
			t.Errorf("%s:%d: no prompt in sh blocks, so commands can be copied as they are: %q", file, i+1, line)
		}
		if pending.Len() == 0 {
			pendingLine = i + 1
		}
		if cont, ok := strings.CutSuffix(trimmed, `\`); ok {
			pending.WriteString(cont)
			continue
		}
		pending.WriteString(trimmed)
		out = append(out, docCommand{file: file, line: pendingLine, text: pending.String()})
		pending.Reset()
	}
	return out
}

// freshCopy copies what a clone would have (tracked files, and new ones
// not ignored) to a temporary directory, so commands run as in a fresh
// clone and write nothing into the working tree.
func freshCopy(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is needed to list the repository's files")
	}
	list, err := exec.Command("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output()
	if err != nil {
		t.Skipf("not a git work tree (%v): nothing to copy as a fresh clone", err)
	}
	dir := t.TempDir()
	for _, name := range strings.Split(strings.TrimRight(string(list), "\x00"), "\x00") {
		fi, err := os.Lstat(name)
		if errors.Is(err, os.ErrNotExist) {
			continue // deleted in the work tree
		}
		if err != nil {
			t.Fatal(err)
		}
		if !fi.Mode().IsRegular() {
			continue
		}
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, data, fi.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// runShell runs a command with bash in dir, in the environment of a user
// who has set none of the plugin's variables.
func runShell(dir, command string) (stdout, stderr string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-e", "-o", "pipefail", "-c", command)
	cmd.Dir = dir
	// The copy's path differs per run, so without -trimpath every go run
	// would compile the whole module again; and go run builds as make build
	// does, so the two share what the build cache holds.
	goflags := "-trimpath"
	for _, kv := range os.Environ() {
		switch {
		case strings.HasPrefix(kv, "SDP_"), strings.HasPrefix(kv, "NODE_NAME="):
		case strings.HasPrefix(kv, "GOFLAGS="):
			goflags = strings.TrimPrefix(kv, "GOFLAGS=") + " " + goflags
		default:
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "GOFLAGS="+goflags, "CGO_ENABLED=0")
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

// Temporary directories and the manifest hash differ from run to run, or
// from one version of the manifest package to the next.
var unstable = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`\S*/sdp-sim-[0-9]+`), "/tmp/sdp-sim-N"},
	{regexp.MustCompile(`Manifest [0-9a-f]{16},`), "Manifest HASH,"},
}

func normalize(s string) string {
	for _, u := range unstable {
		s = u.re.ReplaceAllString(s, u.with)
	}
	return s
}

func checkOutput(t *testing.T, c docCommand, stdout string) {
	t.Helper()
	if normalize(stdout) == normalize(c.output.text) {
		return
	}
	if *updateReadme {
		data, err := os.ReadFile(c.file)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(string(data), "\n")
		updated := append(append(append([]string{}, lines[:c.output.start-1]...), strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")...), lines[c.output.end-1:]...)
		if err := os.WriteFile(c.file, []byte(strings.Join(updated, "\n")), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s:%d: rewrote the output of %q", c.file, c.output.start, c.text)
		return
	}
	t.Errorf("%s:%d: %q no longer prints what the file shows (go test -run TestREADME . -update-readme rewrites it):\n%s",
		c.file, c.output.start, c.text, lineDiff(normalize(c.output.text), normalize(stdout)))
}

// lineDiff shows the lines only one side has, in order.
func lineDiff(shown, printed string) string {
	var b strings.Builder
	a, p := strings.Split(shown, "\n"), strings.Split(printed, "\n")
	for i := 0; i < max(len(a), len(p)); i++ {
		var x, y string
		if i < len(a) {
			x = a[i]
		}
		if i < len(p) {
			y = p[i]
		}
		if x != y {
			fmt.Fprintf(&b, "line %d\n  shown:   %s\n  printed: %s\n", i+1, x, y)
		}
	}
	return b.String()
}

// checkMakeTarget checks that make knows the target: make -n prints its
// recipe without running it.
func checkMakeTarget(t *testing.T, repo, command string) {
	t.Helper()
	if _, _, err := runShell(repo, strings.Replace(command, "make ", "make -n ", 1)); err != nil {
		t.Errorf("%q: make -n fails: %v", command, err)
	}
}

// checkKubectlFiles checks what a kubectl command names in the repository:
// a file (-f) exists; a kustomization (-k) exists and, when
// kubectl is installed, renders.
func checkKubectlFiles(t *testing.T, repo, command string) {
	t.Helper()
	fields := strings.Fields(command)
	for i := 0; i+1 < len(fields); i++ {
		arg := fields[i+1]
		switch fields[i] {
		case "-f", "--filename":
			if _, err := os.Stat(filepath.Join(repo, arg)); err != nil {
				t.Errorf("%q: %v", command, err)
			}
		case "-k", "--kustomize":
			if _, err := os.Stat(filepath.Join(repo, arg, "kustomization.yaml")); err != nil {
				t.Errorf("%q: %v", command, err)
				continue
			}
			if _, err := exec.LookPath("kubectl"); err != nil {
				continue
			}
			out, stderr, err := runShell(repo, "kubectl kustomize "+arg)
			if err != nil {
				t.Errorf("%q: kubectl kustomize %s: %v\n%s", command, arg, err, stderr)
			} else if !strings.Contains(out, "kind: DaemonSet") {
				t.Errorf("%q: kubectl kustomize %s renders no DaemonSet:\n%s", command, arg, firstLines(out, 20))
			}
		}
	}
}

func firstLines(s string, n int) string {
	sc := bufio.NewScanner(strings.NewReader(s))
	var b strings.Builder
	for i := 0; i < n && sc.Scan(); i++ {
		b.WriteString(sc.Text() + "\n")
	}
	return b.String()
}

// checkHelmChart checks that the chart a helm command names exists.
func checkHelmChart(t *testing.T, repo, command string) {
	t.Helper()
	for _, f := range strings.Fields(command) {
		if strings.HasPrefix(f, "deploy/") {
			if _, err := os.Stat(filepath.Join(repo, f, "Chart.yaml")); err != nil {
				t.Errorf("%q: %v", command, err)
			}
		}
	}
}

// TestDocLinks checks the relative links of README.md and docs/*.md: the
// file exists, and an #anchor names a heading of the file it points to.
func TestDocLinks(t *testing.T) {
	docs, _ := filepath.Glob("docs/*.md")
	docs = append([]string{"README.md"}, docs...)
	link := regexp.MustCompile(`\]\(([^)\s]+)\)`)
	for _, doc := range docs {
		data, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range link.FindAllStringSubmatch(string(data), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			file, anchor, _ := strings.Cut(target, "#")
			path := doc
			if file != "" {
				path = filepath.Join(filepath.Dir(doc), file)
			}
			if _, err := os.Stat(path); err != nil {
				t.Errorf("%s: link %s: %v", doc, target, err)
				continue
			}
			if anchor != "" && !slices.Contains(headingAnchors(t, path), anchor) {
				t.Errorf("%s: link %s: %s has no heading #%s", doc, target, path, anchor)
			}
		}
	}
}

// TestREADMEListsEveryExample: a new example is of no use if the README
// does not point to it.
func TestREADMEListsEveryExample(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	examples, _ := filepath.Glob("examples/*.yaml")
	for _, ex := range examples {
		if !strings.Contains(string(readme), "]("+ex+")") {
			t.Errorf("README.md has no link to %s; add it to the table of examples", ex)
		}
	}
}

// headingAnchors lists the anchors GitHub gives a markdown file's headings.
func headingAnchors(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var anchors []string
	inFence := false
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			inFence = !inFence
		}
		if inFence || !strings.HasPrefix(line, "#") {
			continue
		}
		title := strings.ToLower(strings.TrimSpace(strings.TrimLeft(line, "#")))
		var b strings.Builder
		for _, r := range title {
			switch {
			case r == ' ':
				b.WriteRune('-')
			case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
				b.WriteRune(r)
			}
		}
		anchors = append(anchors, b.String())
	}
	return anchors
}
