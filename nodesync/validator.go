package nodesync

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// validateTimeout bounds one run of the validator binary; a manifest is
// checked in milliseconds, so only a hung binary reaches it.
const validateTimeout = 30 * time.Second

// ExecValidator returns a Validate function that runs `binary validate -`
// with the manifest on standard input: the node's binary, not this one,
// decides whether the node's service would accept the manifest, so a
// newer sync image never writes fields an older node binary refuses.
// Exit 0 is valid; exit 1 is invalid, with the lines the binary printed
// as the problems; anything else (no binary, cannot start, another exit
// code) is an error: no decision.
func ExecValidator(binary string) func(ctx context.Context, data []byte) error {
	return func(ctx context.Context, data []byte) error {
		path, err := exec.LookPath(binary)
		if err != nil {
			return fmt.Errorf("validator %s: %w (is the node service installed on this node?)", binary, err)
		}
		ctx, cancel := context.WithTimeout(ctx, validateTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, path, "validate", "-")
		cmd.Stdin = bytes.NewReader(data)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		cmd.Env = withoutSDPVariables(os.Environ())
		cmd.WaitDelay = time.Second // a child holding the pipes cannot hang us
		err = cmd.Run()
		if err == nil {
			return nil
		}
		var exit *exec.ExitError
		if errors.As(err, &exit) && exit.ExitCode() == 1 {
			problems := lines(stderr.String())
			if len(problems) == 0 {
				problems = lines(stdout.String())
			}
			return &InvalidError{Problems: problems}
		}
		out := strings.Join(lines(stderr.String()+stdout.String()), "; ")
		if out != "" {
			return fmt.Errorf("validator %s validate -: %w: %s", binary, err, out)
		}
		return fmt.Errorf("validator %s validate -: %w", binary, err)
	}
}

// withoutSDPVariables drops the SDP_* variables meant for this sync
// process (SDP_MANIFEST, SDP_LISTEN, ...), which would otherwise set the
// validator's own flags.
func withoutSDPVariables(env []string) []string {
	kept := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, "SDP_") {
			kept = append(kept, kv)
		}
	}
	return kept
}

// lines are the non-empty lines of s.
func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}
