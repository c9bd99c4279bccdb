package main

import (
	"context"
	"fmt"
	"io"
)

func simulateCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "simulate: not built yet")
	return exitFailure
}
