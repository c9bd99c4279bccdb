// Package chartdoc writes the Helm chart's README.md: an introduction
// (intro.md, a text/template over Chart.yaml) and a table of the values,
// each with its type from values.schema.json and its description and
// default from values.yaml. The table is generated so that it cannot drift
// from the chart: a value without a comment, or one the schema does not
// know (or the other way round), is an error, not a gap in the README.
package chartdoc

import (
	"bytes"
	_ "embed"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/template"

	"sigs.k8s.io/yaml"
)

//go:embed intro.md
var intro string

// Chart is what the introduction uses of Chart.yaml.
type Chart struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Version     string `json:"version"`
	AppVersion  string `json:"appVersion"`
}

// Generate returns the README.md of the chart in chartDir.
func Generate(chartDir string) ([]byte, error) {
	read := func(name string) ([]byte, error) {
		data, err := os.ReadFile(filepath.Join(chartDir, name))
		if err != nil {
			return nil, fmt.Errorf("read the chart's %s: %w", name, err)
		}
		return data, nil
	}
	chartYAML, err := read("Chart.yaml")
	if err != nil {
		return nil, err
	}
	valuesYAML, err := read("values.yaml")
	if err != nil {
		return nil, err
	}
	schemaJSON, err := read("values.schema.json")
	if err != nil {
		return nil, err
	}
	var chart Chart
	if err := yaml.Unmarshal(chartYAML, &chart); err != nil {
		return nil, fmt.Errorf("Chart.yaml: %w", err)
	}
	values, err := Values(valuesYAML, schemaJSON)
	if err != nil {
		return nil, err
	}
	return Render(chart, values)
}

// Render writes the introduction and the table of values.
func Render(chart Chart, values []Value) ([]byte, error) {
	tmpl, err := template.New("intro.md").Option("missingkey=error").Parse(intro)
	if err != nil {
		return nil, fmt.Errorf("intro.md: %w", err)
	}
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, chart); err != nil {
		return nil, fmt.Errorf("intro.md: %w", err)
	}
	buf.WriteString("\n| Value | Type | Default | Description |\n| --- | --- | --- | --- |\n")
	for _, v := range values {
		fmt.Fprintf(&buf, "| `%s` | %s | %s | %s |\n", v.Path, cell(v.Type), cell(v.Default), cell(v.Description))
	}
	return buf.Bytes(), nil
}

// cell escapes what would end a table cell.
func cell(s string) string {
	return strings.ReplaceAll(s, "|", `\|`)
}
