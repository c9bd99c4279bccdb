package main

import (
	"context"
	"fmt"
	"io"
)

func runCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "run: not built yet")
	return exitFailure
}
