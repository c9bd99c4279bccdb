package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// proc is a subject under test running as its own process.
type proc struct {
	cmd     *exec.Cmd
	started time.Time
	logPath string
	exited  chan struct{}
	waitErr error
}

// startProc runs bin with args, its output going to logPath.
func startProc(logPath, bin string, args ...string) (*proc, error) {
	log, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	p := &proc{cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	p.started = time.Now()
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() {
		p.waitErr = cmd.Wait()
		log.Close()
		close(p.exited)
	}()
	return p, nil
}

// status reads a "VmXXX: N kB" field of /proc/PID/status in bytes.
func (p *proc) status(field string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), ":")
		if !ok || name != field {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %q: %w", field, value, err)
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, p.cmd.Process.Pid)
}

// peakRSS is VmHWM: the most resident memory the process ever had.
func (p *proc) peakRSS() (int64, error) { return p.status("VmHWM") }

// cpuTime is the CPU time the process used so far (user + system).
func (p *proc) cpuTime() time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return -1
	}
	// Fields after the command name (which may hold spaces) in parentheses.
	fields := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
	if len(fields) < 13 {
		return -1
	}
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / 100 // USER_HZ
}

// openFDs counts /proc/PID/fd.
func (p *proc) openFDs() int {
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", p.cmd.Process.Pid))
	if err != nil {
		return -1
	}
	return len(entries)
}

// threads reads Threads from /proc/PID/status.
func (p *proc) threads() int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "Threads:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	return -1
}

// stop sends SIGTERM and waits; it returns how long the exit took.
func (p *proc) stop(timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	select {
	case <-p.exited:
		return 0, fmt.Errorf("%s exited early: %v (log %s)", filepath.Base(p.cmd.Path), p.waitErr, p.logPath)
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		took := time.Since(start)
		if p.waitErr != nil {
			return took, fmt.Errorf("%s: %v (log %s)", filepath.Base(p.cmd.Path), p.waitErr, p.logPath)
		}
		return took, nil
	case <-time.After(timeout):
		_ = p.cmd.Process.Kill()
		<-p.exited
		return time.Since(start), fmt.Errorf("%s did not exit within %v of SIGTERM (log %s)", filepath.Base(p.cmd.Path), timeout, p.logPath)
	}
}

// alive fails if the process has exited.
func (p *proc) alive() error {
	select {
	case <-p.exited:
		return fmt.Errorf("%s exited: %v (log %s)", filepath.Base(p.cmd.Path), p.waitErr, p.logPath)
	default:
		return nil
	}
}
