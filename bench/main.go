// Command sdp-bench measures simple-device-plugin end to end, through the
// real device plugin gRPC API over unix sockets: the host runs as the built
// binary in its own process, the baseline (a minimal device plugin, the
// `minimal` subcommand of this binary) in another, and this process plays
// the kubelet. Every figure is printed with the baseline measured in the
// same run and the median of per-round ratios. See docs/performance.md.
//
//	sdp-bench [-bin bin/simple-device-plugin] [-only allocate,startup,...] [-quick] [-json F] [-md F]
//	sdp-bench minimal -dir DIR ...   (the baseline plugin; started by the bench)
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"time"
)

// bench is one run's settings and results.
type bench struct {
	bin     string // the host binary
	self    string // a copy of this binary, for the minimal plugin
	logs    string // subjects' logs
	quick   bool
	out     io.Writer
	configs string
	nRounds int
	versus  string // baseline host binary for before/after runs; "" = the minimal plugin
	// testdata is the repository's testdata dir: the test manifests the
	// modules share.
	testdata string

	Machine string         `json:"machine"`
	Started time.Time      `json:"started"`
	Figures []figure       `json:"figures"`
	Startup []startupPoint `json:"startup"`
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "minimal" {
		os.Exit(minimalMain(os.Args[2:]))
	}
	os.Exit(benchMain(os.Args[1:]))
}

var sections = []struct {
	name string
	run  func(*bench) error
}{
	{"allocate", (*bench).allocate},
	{"startup", (*bench).startup},
	{"recovery", (*bench).recovery},
	{"largest", (*bench).largest},
	{"reload", (*bench).reload},
}

func benchMain(args []string) int {
	fs := flag.NewFlagSet("sdp-bench", flag.ContinueOnError)
	bin := fs.String("bin", "bin/simple-device-plugin", "the host binary under test")
	only := fs.String("only", "", "comma-separated sections to run (allocate,startup,recovery,largest,reload); default all")
	quick := fs.Bool("quick", false, "a few rounds only: checks the bench works; the figures mean little")
	jsonOut := fs.String("json", "", "also write the results as JSON to this file (for bench/plot)")
	mdOut := fs.String("md", "", "also write the Markdown tables to this file")
	keep := fs.Bool("keep", false, "keep the subjects' logs")
	configs := fs.String("configs", "", "configurations to run, as RxD,RxD (resources × devices; recovery uses R): default each section's set")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the bench process (the kubelet side) to this file")
	versus := fs.String("versus", "", "an older host binary to use as the baseline instead of the minimal plugin (before/after of a change)")
	rounds := fs.Int("rounds", 0, "rounds per measurement, instead of each section's default")
	testdata := fs.String("testdata", "testdata", "the repository's testdata dir (the allocate manifest is there)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	binPath, err := filepath.Abs(*bin)
	if err == nil {
		_, err = os.Stat(binPath)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "host binary: %v (run make build first)\n", err)
		return 1
	}
	if *versus != "" {
		if *versus, err = filepath.Abs(*versus); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	logs, err := tempDir("sdpb-logs")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	// The minimal plugin runs from its own copy of this binary: run from
	// the same file, it would share its code pages with the bench's
	// client, warm in the cache the client just used, which the host does
	// not get (measured: 3–5 % off the baseline's Allocate latency).
	minimal, err := copyExecutable(self, filepath.Join(logs, "sdp-minimal"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var md strings.Builder
	b := &bench{bin: binPath, self: minimal, logs: logs, quick: *quick, out: io.MultiWriter(os.Stdout, &md), configs: *configs, nRounds: *rounds, versus: *versus, testdata: *testdata,
		Machine: machine(), Started: time.Now()}
	fmt.Fprintf(b.out, "# sdp-bench %s\n\n%s; subjects' logs in %s\n\n", b.Started.Format(time.RFC3339), b.Machine, logs)

	want := map[string]bool{}
	for _, s := range strings.Split(*only, ",") {
		if s = strings.TrimSpace(s); s != "" {
			want[s] = true
		}
	}
	failed := false
	for _, s := range sections {
		if len(want) > 0 && !want[s.name] {
			continue
		}
		start := time.Now()
		if err := s.run(b); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", s.name, err)
			failed = true
			continue
		}
		fmt.Fprintf(os.Stderr, "%s: done in %v\n", s.name, time.Since(start).Round(time.Second))
	}
	if *jsonOut != "" {
		data, _ := json.MarshalIndent(b, "", "  ")
		if err := os.WriteFile(*jsonOut, append(data, '\n'), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			failed = true
		}
	}
	if *mdOut != "" {
		if err := os.WriteFile(*mdOut, []byte(md.String()), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			failed = true
		}
	}
	if failed {
		return 1
	}
	if !*keep {
		os.RemoveAll(logs)
	}
	return 0
}

// rounds picks a round count: full or quick.
func (b *bench) rounds(full, quick int) int {
	if b.nRounds > 0 {
		return b.nRounds
	}
	if b.quick {
		return quick
	}
	return full
}

func (b *bench) section(title, intro string) {
	fmt.Fprintf(b.out, "## %s\n\n%s\n\n", title, intro)
}

func (b *bench) publish(figs ...figure) {
	b.Figures = append(b.Figures, figs...)
	writeTable(b.out, figs)
}

// startHost runs the host binary on dir, registering with kubelet.sock there.
func (b *bench) startHost(tag, dir, manifestPath string) (*proc, error) {
	return startProc(filepath.Join(b.logs, tag+".log"), b.bin, append([]string{
		"run", "--manifest", manifestPath, "--device-plugin-dir", dir, "--listen", "",
		"--registration", "kubelet-socket", "--node-name", "bench-node"}, cdiArgs(dir)...)...)
}

// cdiArgs keep this build's CDI side off the machine's own CDI dirs: specs
// go next to the sockets, and no CDI name is checked (no spec on this
// machine defines the test manifests' names). Older builds have no such
// flags.
func cdiArgs(dir string) []string {
	return []string{"--cdi-spec-dir", filepath.Join(dir, "cdi"), "--cdi-registry-dirs="}
}

// startMinimal runs the baseline plugin on dir.
func (b *bench) startMinimal(tag, dir string, args ...string) (*proc, error) {
	return startProc(filepath.Join(b.logs, tag+".log"), b.self, append([]string{"minimal", "-dir", dir}, args...)...)
}

// startBaseline runs the baseline on dir: the minimal plugin with args,
// or with -versus the older host binary with the manifest.
func (b *bench) startBaseline(tag, dir, manifestPath string, args ...string) (*proc, error) {
	if b.versus == "" {
		return b.startMinimal(tag+"-minimal", dir, args...)
	}
	return startProc(filepath.Join(b.logs, tag+"-versus.log"), b.versus,
		"run", "--manifest", manifestPath, "--device-plugin-dir", dir, "--listen", "",
		"--registration", "kubelet-socket", "--node-name", "bench-node")
}

// baseName names the baseline in tables.
func (b *bench) baseName() string {
	if b.versus == "" {
		return "minimal plugin"
	}
	return "host " + filepath.Base(b.versus)
}

func machine() string {
	cpu := "?"
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				cpu = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	kernel, _ := exec.Command("uname", "-r").Output()
	return fmt.Sprintf("%s, %d CPUs, %s, linux %s", cpu, runtime.NumCPU(), runtime.Version(), strings.TrimSpace(string(kernel)))
}

// copyExecutable copies the executable src to dst: a file of its own, so
// its pages in memory are its own too.
func copyExecutable(src, dst string) (string, error) {
	in, err := os.Open(src)
	if err != nil {
		return "", fmt.Errorf("copy the bench binary for the minimal plugin: %w", err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o755)
	if err != nil {
		return "", fmt.Errorf("copy the bench binary for the minimal plugin: %w", err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return "", fmt.Errorf("copy the bench binary to %s: %w", dst, err)
	}
	if err := out.Close(); err != nil {
		return "", fmt.Errorf("copy the bench binary to %s: %w", dst, err)
	}
	return dst, nil
}
