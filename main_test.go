package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
)

// TestVersionStamp builds the binary with the -X flag that the Makefile and
// the Dockerfile pass and runs `version`: the linker silently ignores -X for
// a variable that does not exist, so a stale name would ship "dev".
func TestVersionStamp(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go command is needed to build the binary")
	}
	stampFlag := regexp.MustCompile(`-X ([^=\s'"]+)=`)
	var variable string
	for _, file := range []string{"Makefile", "Dockerfile"} {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		found := stampFlag.FindAllSubmatch(data, -1)
		if len(found) != 1 {
			t.Fatalf("%s has %d -X flags, want the one that stamps the version", file, len(found))
		}
		name := string(found[0][1])
		if variable != "" && name != variable {
			t.Fatalf("%s stamps %s, the Makefile %s", file, name, variable)
		}
		variable = name
	}

	const stamp = "v0.0.0-stamp"
	bin := filepath.Join(t.TempDir(), "simple-device-plugin")
	build := exec.Command(goTool, "build", "-trimpath", "-ldflags", "-X "+variable+"="+stamp, "-o", bin, ".")
	// As make build and the README test build, so they share the build cache.
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		t.Fatalf("%s version: %v", bin, err)
	}
	if want := "simple-device-plugin " + stamp + "\n"; string(out) != want {
		t.Errorf("-X %s=%s: version prints %q, want %q", variable, stamp, out, want)
	}
}
