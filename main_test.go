package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestVersionStamp builds the binary with the -X flags that the Makefile
// and the Dockerfile pass and runs `version`: the linker silently ignores
// -X for a variable that does not exist, so a stale name would ship "dev".
func TestVersionStamp(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go command is needed to build the binary")
	}
	const (
		versionVar = "simple-device-plugin/cli.version"
		commitVar  = "simple-device-plugin/cli.commit"
	)
	stampFlag := regexp.MustCompile(`-X ([^=\s'"]+)=`)
	for _, file := range []string{"Makefile", "Dockerfile"} {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, m := range stampFlag.FindAllSubmatch(data, -1) {
			names = append(names, string(m[1]))
		}
		slices.Sort(names)
		if want := []string{commitVar, versionVar}; !slices.Equal(names, want) {
			t.Errorf("%s stamps %q, want %q", file, names, want)
		}
	}

	const stamp, commit = "v0.0.0-stamp", "0123abcd"
	bin := filepath.Join(t.TempDir(), "simple-device-plugin")
	build := exec.Command(goTool, "build", "-trimpath", "-ldflags", "-X "+versionVar+"="+stamp+" -X "+commitVar+"="+commit, "-o", bin, ".")
	// As make build and the README test build, so they share the build cache.
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "version", "--output", "json").Output()
	if err != nil {
		t.Fatalf("%s version: %v", bin, err)
	}
	var got struct{ Version, Commit string }
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("version --output json: %v\n%s", err, out)
	}
	if got.Version != stamp || got.Commit != commit {
		t.Errorf("version prints %+v, want version %q and commit %q", got, stamp, commit)
	}
	out, err = exec.Command(bin, "--version").Output()
	if err != nil || !strings.HasPrefix(string(out), "simple-device-plugin "+stamp+"\n  commit:   "+commit+"\n") {
		t.Errorf("--version: %v\n%s", err, out)
	}
}
