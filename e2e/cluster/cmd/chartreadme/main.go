// Command chartreadme writes the Helm chart's README.md from its
// values.yaml and values.schema.json (`make chart-readme`):
//
//	chartreadme deploy/helm/simple-device-plugin
//
// A test (TestChartREADME) fails when the committed README differs from
// what this writes.
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"simple-device-plugin/e2e/cluster/internal/chartdoc"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: chartreadme CHART_DIR")
		os.Exit(2)
	}
	if err := write(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "chartreadme:", err)
		os.Exit(1)
	}
}

func write(chartDir string) error {
	readme, err := chartdoc.Generate(chartDir)
	if err != nil {
		return err
	}
	path := filepath.Join(chartDir, "README.md")
	if err := os.WriteFile(path, readme, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	fmt.Println(path)
	return nil
}
