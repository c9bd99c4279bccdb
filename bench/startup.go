package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// startupPoint is one configuration's medians, for the table and the plot.
type startupPoint struct {
	Resources int `json:"resources"`
	Devices   int `json:"devicesPerResource"`
	Rounds    int `json:"rounds"`

	HostMs        float64 `json:"hostMs"`
	BaselineMs    float64 `json:"baselineMs"`
	RatioMs       float64 `json:"ratioMs"`
	HostMB        float64 `json:"hostPeakMB"`
	BaselineMB    float64 `json:"baselinePeakMB"`
	RatioMB       float64 `json:"ratioMB"`
	HostFDs       int     `json:"hostFDs"`
	HostThreads   int     `json:"hostThreads"`
	HostStopMs    float64 `json:"hostShutdownMs"`
	HostCPUMs     float64 `json:"hostCPUMs"`
	BaselineCPUMs float64 `json:"baselineCPUMs"`
	MaxHostMs     float64 `json:"maxHostMs"`
	BaselineFDs   int     `json:"baselineFDs"`
	DevicesTotal  int     `json:"devicesTotal"`
}

type startRun struct {
	elapsed  time.Duration // process start to the last resource's first device list
	peak     int64         // VmHWM once every resource is registered
	fds      int
	threads  int
	shutdown time.Duration
	cpu      time.Duration // CPU time used by then
}

// startup: from exec of the process to every resource registered with the
// registration server in this process (Register arrived, plugin dialled
// back, first ListAndWatch message received), and the peak RSS.
func (b *bench) startup() error {
	type config struct{ resources, devices int }
	configs := []config{
		{1, 1000}, {10, 1000}, {100, 1000}, {250, 1000}, {500, 1000}, // grow resources
		{10, 10}, {10, 100}, {10, 10000}, {10, 50000}, // grow devices per resource
		{500, 100}, {500, 2000}, // and both
	}
	if b.quick {
		configs = []config{{10, 1000}, {500, 1000}}
	}
	if b.configs != "" {
		configs = nil
		for _, c := range strings.Split(b.configs, ",") {
			var r, d int
			if _, err := fmt.Sscanf(c, "%dx%d", &r, &d); err != nil {
				return fmt.Errorf("-configs %q: %w", c, err)
			}
			configs = append(configs, config{r, d})
		}
	}
	rounds := b.rounds(7, 2)

	b.section("Start-up at scale", fmt.Sprintf("Time from exec of the process to the last resource's first ListAndWatch message at the registration server "+
		"(this process; it dials each plugin back like the kubelet), and peak RSS (VmHWM) then. Host: the real binary with a manifest of N resources × D devices "+
		"(each resource with an env var, an annotation and a per-device mount template). Baseline: the minimal plugin serving the same names and IDs "+
		"(one gRPC server per resource). %d rounds per configuration, alternating which runs first; medians and median of per-round ratios.", rounds))
	fmt.Fprintln(b.out, "| resources × devices | host time | baseline time | ratio | host peak RSS | baseline peak RSS | ratio | host / baseline CPU | host fds / threads | host shutdown |")
	fmt.Fprintln(b.out, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	for _, c := range configs {
		dir, err := tempDir("sdpb-m")
		if err != nil {
			return err
		}
		manifestPath := filepath.Join(dir, "manifest.yaml")
		if err := os.WriteFile(manifestPath, []byte(scaleManifest(c.resources, c.devices, nil)), 0o644); err != nil {
			return err
		}
		var tm, mem, cpu series
		var hostMax float64
		var last [2]startRun
		for round := range rounds {
			var runs [2]startRun
			order := []int{0, 1}
			if round%2 == 1 {
				order = []int{1, 0}
			}
			for _, who := range order {
				r, err := b.startOnce(who == 0, manifestPath, c.resources, c.devices)
				if err != nil {
					os.RemoveAll(dir)
					return fmt.Errorf("%d × %d: %w", c.resources, c.devices, err)
				}
				runs[who] = r
			}
			tm.add(ms(runs[0].elapsed), ms(runs[1].elapsed))
			mem.add(mb(runs[0].peak), mb(runs[1].peak))
			cpu.add(ms(runs[0].cpu), ms(runs[1].cpu))
			hostMax = max(hostMax, ms(runs[0].elapsed))
			last = runs
		}
		os.RemoveAll(dir)
		ft := tm.figure("startup", "", "ms", "")
		fm := mem.figure("startup", "", "MB", "")
		p := startupPoint{
			Resources: c.resources, Devices: c.devices, Rounds: rounds, DevicesTotal: c.resources * c.devices,
			HostMs: ft.Value, BaselineMs: ft.Baseline, RatioMs: ft.Ratio, MaxHostMs: hostMax,
			HostMB: fm.Value, BaselineMB: fm.Baseline, RatioMB: fm.Ratio,
			HostCPUMs: median(cpu.subject), BaselineCPUMs: median(cpu.baseline),
			HostFDs: last[0].fds, HostThreads: last[0].threads, HostStopMs: ms(last[0].shutdown), BaselineFDs: last[1].fds,
		}
		b.Startup = append(b.Startup, p)
		fmt.Fprintf(b.out, "| %d × %d | %.0f ms | %.0f ms | %.2f | %.1f MB | %.1f MB | %.2f | %.0f / %.0f ms | %d / %d | %.0f ms |\n",
			c.resources, c.devices, p.HostMs, p.BaselineMs, p.RatioMs, p.HostMB, p.BaselineMB, p.RatioMB, p.HostCPUMs, p.BaselineCPUMs,
			p.HostFDs, p.HostThreads, p.HostStopMs)
		if c.resources == 500 && c.devices == 1000 {
			ft.Name, fm.Name = "start-up, 500 × 1,000: time to all registered", "start-up, 500 × 1,000: peak RSS"
			ft.BaseName, fm.BaseName = b.baseName(), b.baseName()
			b.Figures = append(b.Figures, ft.withGoal("< 2 s", ft.Value < 2000), fm.withGoal("< 100 MB", fm.Value < 100))
		}
	}
	fmt.Fprintln(b.out)
	return nil
}

// startOnce starts the host (or the baseline) on a fresh dir with a fresh
// registration server, waits for every resource, measures, stops it.
func (b *bench) startOnce(host bool, manifestPath string, resources, devices int) (startRun, error) {
	var r startRun
	k, dir, done, err := startKubeletInTempDir()
	if err != nil {
		return r, err
	}
	defer done()
	tag := fmt.Sprintf("startup-%d-%d", resources, devices)
	var p *proc
	if host {
		p, err = b.startHost(tag+"-host", dir, manifestPath)
	} else {
		p, err = b.startBaseline(tag, dir, manifestPath, "-resources", fmt.Sprint(resources), "-devices", fmt.Sprint(devices))
	}
	if err != nil {
		return r, err
	}
	last, err := waitAllListed(k, scaleNames(resources), 120*time.Second)
	if err != nil {
		p.stop(5 * time.Second)
		return r, err
	}
	r.elapsed = last.Sub(p.started)
	r.peak, err = p.peakRSS()
	if err != nil {
		return r, err
	}
	r.fds, r.threads, r.cpu = p.openFDs(), p.threads(), p.cpuTime()
	if os.Getenv("SDP_MEMPROFILE") != "" { // a profiling build: take a heap profile now
		_ = p.cmd.Process.Signal(syscall.SIGUSR1)
		time.Sleep(time.Second)
	}
	r.shutdown, err = p.stop(10 * time.Second)
	return r, err
}
