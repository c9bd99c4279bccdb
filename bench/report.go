package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"
)

// figure is one published number: the subject's median, the baseline's
// median measured in the same run, and the median of per-round ratios
// (subject / baseline). Ratio is what to compare across machines.
type figure struct {
	Section  string  `json:"section"`
	Name     string  `json:"name"`
	Unit     string  `json:"unit"`
	Value    float64 `json:"value"`
	Baseline float64 `json:"baseline"`
	BaseName string  `json:"baselineName"`
	Ratio    float64 `json:"ratio"`
	Rounds   int     `json:"rounds"`
	Goal     string  `json:"goal,omitempty"`
	Met      *bool   `json:"met,omitempty"`
	Note     string  `json:"note,omitempty"`
}

// series holds per-round samples of a subject and its baseline.
type series struct {
	subject, baseline []float64
}

func (s *series) add(subject, baseline float64) {
	s.subject = append(s.subject, subject)
	s.baseline = append(s.baseline, baseline)
}

// figure summarises: medians of each side, median of per-round ratios.
func (s *series) figure(section, name, unit, baseName string) figure {
	ratios := make([]float64, len(s.subject))
	for i := range s.subject {
		ratios[i] = s.subject[i] / s.baseline[i]
	}
	return figure{
		Section: section, Name: name, Unit: unit, BaseName: baseName,
		Value: median(s.subject), Baseline: median(s.baseline), Ratio: median(ratios), Rounds: len(s.subject),
	}
}

func (f figure) withGoal(goal string, met bool) figure {
	f.Goal, f.Met = goal, &met
	return f
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func maxOf(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	return slices.Max(xs)
}

// percentile is the nearest-rank percentile of sorted samples.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
func mb(b int64) float64         { return float64(b) / 1e6 }

// writeTable prints figures as a Markdown table.
func writeTable(w io.Writer, figs []figure) {
	fmt.Fprintln(w, "| figure | subject | baseline | ratio (median of rounds) | rounds | goal |")
	fmt.Fprintln(w, "| --- | ---: | ---: | ---: | ---: | --- |")
	for _, f := range figs {
		goal := f.Goal
		if f.Met != nil {
			if *f.Met {
				goal += " ✔"
			} else {
				goal += " ✘"
			}
		}
		if f.Note != "" {
			goal = strings.TrimSpace(goal + " " + f.Note)
		}
		fmt.Fprintf(w, "| %s | %s %s | %s %s (%s) | %.3f | %d | %s |\n",
			f.Name, num(f.Value), f.Unit, num(f.Baseline), f.Unit, f.BaseName, f.Ratio, f.Rounds, goal)
	}
	fmt.Fprintln(w)
}

func num(v float64) string {
	switch {
	case math.IsNaN(v):
		return "–"
	case v >= 1000:
		return fmt.Sprintf("%.0f", v)
	case v >= 100:
		return fmt.Sprintf("%.1f", v)
	case v >= 10:
		return fmt.Sprintf("%.2f", v)
	}
	return fmt.Sprintf("%.3f", v)
}
