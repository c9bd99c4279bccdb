// Command podinfo is the cluster test's workload: it prints what its
// container got (environment, mounts, device nodes) in a line format a test
// can parse, then sleeps until SIGTERM. `podinfo once` prints and exits, for
// `kubectl exec`; `podinfo stop` ends the container's own podinfo (PID 1);
// `podinfo read PATH N` opens PATH, as a workload would open its device,
// reads N bytes from it and prints `read PATH HEX`.
//
// Output, one fact a line, sorted within each kind:
//
//	env NAME=VALUE
//	mount MOUNTPOINT root=PATH-IN-SOURCE-FS ro|rw
//	device PATH char|block MAJOR:MINOR
//	file PATH FIRST-LINE          (small regular files under --show dirs)
//	podinfo done
//
// For a bind mount, root= is the mounted directory's path inside its source
// filesystem, so on a host whose directories live on one root filesystem it
// is the host path the kubelet asked for.
package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
)

func main() {
	args := os.Args[1:]
	if len(args) > 0 && args[0] == "stop" {
		// From kubectl exec: end the container's podinfo, so it restarts.
		if err := syscall.Kill(1, syscall.SIGTERM); err != nil {
			fmt.Fprintln(os.Stderr, "podinfo stop:", err)
			os.Exit(1)
		}
		return
	}
	if len(args) > 0 && args[0] == "read" {
		if err := read(os.Stdout, args[1:]); err != nil {
			fmt.Fprintln(os.Stderr, "podinfo read:", err)
			os.Exit(1)
		}
		return
	}
	once := len(args) > 0 && args[0] == "once"
	if once {
		args = args[1:]
	}
	report(os.Stdout, args)
	if once {
		return
	}
	// Sleep until told to stop; exit at once so pod deletion is quick.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
}

// read opens args[0], reads args[1] bytes and prints them in hex: the
// proof that the container may open the device node and read from it.
func read(w io.Writer, args []string) error {
	if len(args) != 2 {
		return errors.New("usage: podinfo read PATH N")
	}
	n, err := strconv.Atoi(args[1])
	if err != nil || n < 1 || n > 4096 {
		return fmt.Errorf("N: %q is not a number of bytes from 1 to 4096", args[1])
	}
	f, err := os.Open(args[0])
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, n)
	if _, err := io.ReadFull(f, buf); err != nil {
		return fmt.Errorf("read %s: %w", args[0], err)
	}
	_, err = fmt.Fprintf(w, "read %s %x\n", args[0], buf)
	return err
}

// report prints env, mounts, device nodes, and the small files under each
// of showDirs.
func report(w io.Writer, showDirs []string) {
	env := os.Environ()
	sort.Strings(env)
	for _, e := range env {
		fmt.Fprintf(w, "env %s\n", e)
	}
	for _, m := range mounts() {
		fmt.Fprintln(w, m)
	}
	for _, d := range devices("/dev") {
		fmt.Fprintln(w, d)
	}
	for _, dir := range showDirs {
		for _, f := range files(dir) {
			fmt.Fprintln(w, f)
		}
	}
	fmt.Fprintln(w, "podinfo done")
}

// mounts reads /proc/self/mountinfo: "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS ...".
func mounts() []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return []string{"error mountinfo " + err.Error()}
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 {
			continue
		}
		mode := "rw"
		for _, o := range strings.Split(fields[5], ",") {
			if o == "ro" {
				mode = "ro"
			}
		}
		out = append(out, fmt.Sprintf("mount %s root=%s %s", unescape(fields[4]), unescape(fields[3]), mode))
	}
	sort.Strings(out)
	return out
}

// unescape undoes mountinfo's octal escapes of space, tab, newline, backslash.
func unescape(s string) string {
	r := strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`)
	return r.Replace(s)
}

// devices lists the character and block devices under root.
func devices(root string) []string {
	var out []string
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() && (p == "/dev/pts" || p == "/dev/shm" || p == "/dev/mqueue") {
			return filepath.SkipDir
		}
		info, err := d.Info()
		if err != nil || info.Mode()&fs.ModeDevice == 0 {
			return nil
		}
		st, ok := info.Sys().(*syscall.Stat_t)
		if !ok {
			return nil
		}
		kind := "block"
		if info.Mode()&fs.ModeCharDevice != 0 {
			kind = "char"
		}
		major, minor := (st.Rdev>>8)&0xfff, (st.Rdev&0xff)|((st.Rdev>>12)&0xfff00)
		out = append(out, fmt.Sprintf("device %s %s %d:%d", p, kind, major, minor))
		return nil
	})
	sort.Strings(out)
	return out
}

// files prints the first line of each small regular file under dir.
func files(dir string) []string {
	var out []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			out = append(out, fmt.Sprintf("file %s error %v", p, err))
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil || info.Size() > 4096 {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return nil
		}
		first, _, _ := strings.Cut(string(data), "\n")
		out = append(out, fmt.Sprintf("file %s %s", p, first))
		return nil
	})
	return out
}
