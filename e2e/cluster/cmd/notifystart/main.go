// Command notifystart starts a service the way systemd starts a
// Type=notify unit, for a test node that has no systemd: it runs the
// command in its own session with $NOTIFY_SOCKET pointing at a socket of
// its own, and returns once the service says READY=1, leaving it running.
// It fails if the service exits first or stays silent past the timeout,
// which (with Wants= and Before=, as the node service's unit has) lets the
// kubelet start anyway.
//
//	notifystart --pidfile F --log F --timeout 30s -- CMD [ARGS...]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

func main() {
	pidfile := flag.String("pidfile", "", "write the service's PID here")
	logfile := flag.String("log", "", "append the service's output here")
	timeout := flag.Duration("timeout", 30*time.Second, "how long to wait for READY=1")
	flag.Parse()
	if err := start(*pidfile, *logfile, *timeout, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "notifystart:", err)
		os.Exit(1)
	}
}

func start(pidfile, logfile string, timeout time.Duration, args []string) error {
	if len(args) == 0 || pidfile == "" || logfile == "" {
		return errors.New("usage: notifystart --pidfile F --log F [--timeout D] -- CMD [ARGS...]")
	}
	dir, err := os.MkdirTemp("", "notify")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		return err
	}
	defer conn.Close()
	out, err := os.OpenFile(logfile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer out.Close()

	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	began := time.Now()
	if err := cmd.Start(); err != nil {
		return err
	}
	if err := os.WriteFile(pidfile, []byte(fmt.Sprintln(cmd.Process.Pid)), 0o644); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	ready := make(chan error, 1)
	go func() { ready <- waitReady(conn) }()

	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	select {
	case err := <-ready:
		if err != nil {
			return err
		}
		fmt.Printf("notifystart: the service said READY=1 %d ms after it was started\n", time.Since(began).Milliseconds())
		return nil
	case err := <-exited:
		return fmt.Errorf("%s exited before READY=1: %v (log: %s)", args[0], err, logfile)
	case <-ctx.Done():
		return fmt.Errorf("%s not READY=1 after %s (log: %s); it keeps running", args[0], timeout, logfile)
	}
}

// waitReady reads notifications until one says READY=1.
func waitReady(conn *net.UnixConn) error {
	buf := make([]byte, 4096)
	for {
		n, err := conn.Read(buf)
		if err != nil {
			return err
		}
		for _, line := range strings.Split(string(buf[:n]), "\n") {
			if line == "READY=1" {
				return nil
			}
		}
	}
}
