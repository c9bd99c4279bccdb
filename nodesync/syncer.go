// Package nodesync keeps a host's manifest file equal to the manifest of a
// ConfigMap, for the node-service mode: the host's service reads the file,
// a DaemonSet pod in the sync role writes it. Only a manifest that the
// node's own binary accepts is written, and always atomically, so the
// service never reads half a file or one it would refuse.
package nodesync

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"simple-device-plugin/internal/atomicfile"
	"simple-device-plugin/internal/filewatch"
)

// Syncer copies Source to Target whenever they differ and Validate accepts
// Source. Set the fields, then call Run; Handler and Ready may be used
// before, during and after Run.
type Syncer struct {
	// Source is the manifest to copy: the ConfigMap's file, usually a
	// symlink into the kubelet's ..data dir.
	Source string
	// Target is the host's manifest file, replaced atomically. Its
	// directory must exist.
	Target string
	// Validate decides whether Source may be written. An *InvalidError
	// means the manifest is refused; any other error means no decision
	// could be made (the validator is missing or failed), and the next
	// change or poll tries again.
	Validate func(ctx context.Context, data []byte) error
	// Poll re-checks both files as a safety net behind file events.
	// Default 10 s.
	Poll time.Duration
	// Debounce gathers a burst of writes to either file into one check.
	// Default 100 ms.
	Debounce time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger

	init    sync.Once
	metrics *metrics

	mu       sync.Mutex
	inSync   bool
	reason   string // why not in sync; "" while in sync or before the first check
	rejected []byte // the last source Validate refused, reported once
}

// InvalidError is a manifest the validator refused, with its problems one
// per line as the validator printed them.
type InvalidError struct {
	Problems []string
}

func (e *InvalidError) Error() string {
	return fmt.Sprintf("invalid manifest: %s", strings.Join(e.Problems, "; "))
}

// Sync results, the values of the result label.
const (
	resultWritten   = "written"
	resultUnchanged = "unchanged"
	resultInvalid   = "invalid"
	resultError     = "error"
)

func (s *Syncer) setup() {
	s.init.Do(func() {
		if s.Logger == nil {
			s.Logger = slog.Default()
		}
		s.Source = filepath.Clean(s.Source)
		s.Target = filepath.Clean(s.Target)
		s.metrics = newMetrics()
	})
}

// Ready says whether the target holds the last valid source right now,
// and if not, why.
func (s *Syncer) Ready() (bool, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inSync {
		return true, ""
	}
	if s.reason == "" {
		return false, "not checked yet"
	}
	return false, s.reason
}

// Once checks once, as Run does at start, and says why the target does
// not hold the source afterwards, or nil: for a node image or cloud-init
// step that syncs before the node service starts.
func (s *Syncer) Once(ctx context.Context) error {
	s.setup()
	if s.Validate == nil {
		return errors.New("nodesync: no Validate function")
	}
	s.check(ctx, s.Logger.With("source", s.Source, "target", s.Target))
	if ok, reason := s.Ready(); !ok {
		return errors.New(reason)
	}
	return nil
}

// Run checks at once, then on every change of either file and every Poll,
// until ctx ends. Both directories are watched: the ConfigMap's for its
// ..data swap, the target's so that a file edited or removed by someone
// else is restored at once rather than at the next poll.
func (s *Syncer) Run(ctx context.Context) error {
	s.setup()
	if s.Validate == nil {
		return errors.New("nodesync: no Validate function")
	}
	log := s.Logger.With("source", s.Source, "target", s.Target)
	filewatch.Watch{Files: []string{s.Source, s.Target}, Debounce: s.Debounce, Poll: s.Poll, Logger: log}.
		Run(ctx, func(filewatch.Reason) { s.check(ctx, log) })
	return nil
}

// check makes the target equal to the source if the source is valid.
func (s *Syncer) check(ctx context.Context, log *slog.Logger) {
	source, err := os.ReadFile(s.Source)
	if err != nil {
		s.fail(log, resultError, fmt.Sprintf("cannot read the source manifest: %v", err))
		return
	}
	target, err := os.ReadFile(s.Target)
	if err == nil && bytes.Equal(source, target) {
		s.succeed(log, resultUnchanged)
		return
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		log.Warn("cannot read the target; replacing it", "err", err)
	}

	if err := s.Validate(ctx, source); err != nil {
		if ctx.Err() != nil {
			return // shutting down: the validator was stopped, it did not decide
		}
		var invalid *InvalidError
		if !errors.As(err, &invalid) {
			s.fail(log, resultError, fmt.Sprintf("cannot validate the source manifest: %v", err))
			return
		}
		s.refuse(log, source, invalid)
		return
	}
	if err := writeAtomically(s.Target, source); err != nil {
		s.fail(log, resultError, fmt.Sprintf("cannot write the target: %v", err))
		return
	}
	log.Info("wrote the host manifest", "bytes", len(source))
	s.succeed(log, resultWritten)
}

// succeed records that the target equals the source.
func (s *Syncer) succeed(log *slog.Logger, result string) {
	s.metrics.syncs.WithLabelValues(result).Inc()
	s.metrics.inSync.Set(1)
	s.metrics.lastSuccess.SetToCurrentTime()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.inSync && result == resultUnchanged {
		log.Info("the host manifest equals the source")
	}
	s.inSync, s.reason, s.rejected = true, "", nil
}

// fail records a check that could not finish, logging only a new reason:
// a validator that is missing stays missing for many polls.
func (s *Syncer) fail(log *slog.Logger, result, reason string) {
	s.metrics.syncs.WithLabelValues(result).Inc()
	s.metrics.inSync.Set(0)
	s.mu.Lock()
	defer s.mu.Unlock()
	if reason != s.reason {
		log.Error("the host manifest is not in sync; nothing written", "reason", reason)
	}
	s.inSync, s.reason = false, reason
}

// refuse records an invalid source. The same version is logged and
// counted once; it is validated again at each check all the same, since
// an upgraded node binary may accept it.
func (s *Syncer) refuse(log *slog.Logger, source []byte, invalid *InvalidError) {
	s.metrics.inSync.Set(0)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inSync = false
	problems := fmt.Sprintf("%d problems", len(invalid.Problems))
	if len(invalid.Problems) == 1 {
		problems = "1 problem"
	}
	s.reason = "the source manifest is invalid (" + problems + "); the host file keeps the last good one"
	if bytes.Equal(source, s.rejected) {
		return
	}
	s.rejected = source
	s.metrics.syncs.WithLabelValues(resultInvalid).Inc()
	if len(invalid.Problems) == 0 {
		log.Error("invalid source manifest; the host file keeps the last good one")
	}
	for _, p := range invalid.Problems {
		log.Error("invalid source manifest; the host file keeps the last good one", "problem", p)
	}
}

// writeAtomically replaces path with data: a temporary file in the same
// directory, synced and renamed over path, so a reader sees the old file
// or the new one, never a part, and the new one survives a power cut.
func writeAtomically(path string, data []byte) error {
	return atomicfile.Write(path, bytes.NewReader(data), 0o644)
}
