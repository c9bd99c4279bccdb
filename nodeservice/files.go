package nodeservice

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"simple-device-plugin/internal/atomicfile"
)

// step is what the installer did to one file.
type step string

const (
	created   step = "created"
	updated   step = "updated"
	unchanged step = "unchanged"
)

// mkdirAll creates dir (0755) and its parents.
func mkdirAll(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w%s", dir, err, fixHint(err))
	}
	return nil
}

// writeAtomic makes path hold content with mode perm: untouched when it
// does already, otherwise through a temporary file in the same dir renamed
// over it, so that a reader (systemd, a starting service) never sees half
// a file, and a running binary is replaced, not overwritten.
func writeAtomic(path string, content io.ReadSeeker, perm fs.FileMode) (step, error) {
	result := created
	if fi, err := os.Lstat(path); err == nil {
		result = updated
		same, err := sameContent(path, content)
		if err != nil {
			return "", err
		}
		if same && fi.Mode().IsRegular() && fi.Mode().Perm() == perm {
			return unchanged, nil
		}
		if _, err := content.Seek(0, io.SeekStart); err != nil {
			return "", fmt.Errorf("write %s: %w", path, err)
		}
	}
	if err := atomicfile.Write(path, content, perm); err != nil {
		return "", fmt.Errorf("write %s: %w%s", path, err, fixHint(err))
	}
	return result, nil
}

// sameContent says whether the file at path holds exactly what content
// reads, without holding either in memory (the binary is tens of MB).
func sameContent(path string, content io.Reader) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, fmt.Errorf("read %s: %w%s", path, err, fixHint(err))
	}
	defer f.Close()
	a, b := make([]byte, 64<<10), make([]byte, 64<<10)
	for {
		na, errA := io.ReadFull(f, a)
		nb, errB := io.ReadFull(content, b)
		if !bytes.Equal(a[:na], b[:nb]) {
			return false, nil
		}
		endA := errors.Is(errA, io.EOF) || errors.Is(errA, io.ErrUnexpectedEOF)
		endB := errors.Is(errB, io.EOF) || errors.Is(errB, io.ErrUnexpectedEOF)
		switch {
		case errA != nil && !endA:
			return false, fmt.Errorf("read %s: %w", path, errA)
		case errB != nil && !endB:
			return false, fmt.Errorf("read the new content of %s: %w", path, errB)
		case endA || endB:
			return endA && endB, nil
		}
	}
}

// symlinkAtomic makes link a symlink to target, replacing whatever link
// was (a symlink elsewhere, a file) by a rename.
func symlinkAtomic(link, target string) (step, error) {
	result := created
	if fi, err := os.Lstat(link); err == nil {
		result = updated
		if fi.Mode()&fs.ModeSymlink != 0 {
			if old, err := os.Readlink(link); err == nil && old == target {
				return unchanged, nil
			}
		}
	}
	tmp := filepath.Join(filepath.Dir(link), "."+filepath.Base(link)+".tmp")
	_ = os.Remove(tmp) // left by an earlier run that failed
	err := os.Symlink(target, tmp)
	if err == nil {
		err = os.Rename(tmp, link)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return "", fmt.Errorf("link %s -> %s: %w%s", link, target, err, fixHint(err))
	}
	return result, nil
}

// fixHint says how to get past a filesystem error the installer meets on
// the host's dirs.
func fixHint(err error) string {
	switch {
	case errors.Is(err, fs.ErrPermission):
		return " (run the installer as root; in a pod: privileged, runAsUser 0, with the host's / mounted read-write)"
	case errors.Is(err, syscall.EROFS):
		return " (read-only on this host: mount the host's / read-write at --host-root, or choose writable dirs with --bin-dir, --unit-dir, --config-dir, such as --bin-dir /opt/bin)"
	case errors.Is(err, syscall.ENOTDIR):
		return " (a file stands where a directory must be: move it away)"
	}
	return ""
}
