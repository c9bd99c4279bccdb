//go:build sdpprofile

package cli

// Built only with -tags sdpprofile (the bench's profiling build, see
// docs/performance.md): $SDP_CPUPROFILE gets a CPU profile from start to
// exit; $SDP_MEMPROFILE a heap profile (after a GC) on each SIGUSR1.

import (
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"syscall"
)

func init() {
	if path := os.Getenv("SDP_CPUPROFILE"); path != "" {
		if f, err := os.Create(path); err == nil {
			_ = pprof.StartCPUProfile(f)
			profileStop = append(profileStop, func() { pprof.StopCPUProfile(); f.Close() })
		}
	}
	if path := os.Getenv("SDP_MEMPROFILE"); path != "" {
		usr1 := make(chan os.Signal, 1)
		signal.Notify(usr1, syscall.SIGUSR1)
		go func() {
			for range usr1 {
				runtime.GC()
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				fmt.Fprintf(os.Stderr, "memstats: goroutines=%d heap_inuse=%.1fMB heap_idle=%.1fMB heap_released=%.1fMB stack_inuse=%.1fMB sys=%.1fMB next_gc=%.1fMB\n",
					runtime.NumGoroutine(), mbOf(ms.HeapInuse), mbOf(ms.HeapIdle), mbOf(ms.HeapReleased), mbOf(ms.StackInuse), mbOf(ms.Sys), mbOf(ms.NextGC))
				if f, err := os.Create(path); err == nil {
					_ = pprof.Lookup("heap").WriteTo(f, 0)
					f.Close()
				}
			}
		}()
	}
}

func mbOf(b uint64) float64 { return float64(b) / 1e6 }
