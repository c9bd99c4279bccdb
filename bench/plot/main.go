// Command plot draws the start-up figures of an sdp-bench run (its -json
// output) as an SVG: time to every resource registered and peak RSS,
// against the number of resources and against devices per resource, host
// and baseline. It is a module of its own so the plotting library never
// becomes a dependency of simple-device-plugin.
//
//	go run . -in ../../docs/bench/results.json -out ../../docs/bench/startup.svg
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"image/color"
	"io"
	"os"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

// point is what plot reads of sdp-bench's start-up results.
type point struct {
	Resources  int     `json:"resources"`
	Devices    int     `json:"devicesPerResource"`
	HostMs     float64 `json:"hostMs"`
	BaselineMs float64 `json:"baselineMs"`
	HostMB     float64 `json:"hostPeakMB"`
	BaselineMB float64 `json:"baselinePeakMB"`
}

type results struct {
	Machine string  `json:"machine"`
	Startup []point `json:"startup"`
}

func main() {
	in := flag.String("in", "docs/bench/results.json", "sdp-bench -json output")
	out := flag.String("out", "docs/bench/startup.svg", "SVG to write")
	png := flag.String("png", "", "also write a PNG here")
	flag.Parse()
	if err := run(*in, *out, *png); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(in, out, png string) error {
	data, err := os.ReadFile(in)
	if err != nil {
		return err
	}
	var r results
	if err := json.Unmarshal(data, &r); err != nil {
		return fmt.Errorf("%s: %w", in, err)
	}
	// Two sweeps: resources at 1,000 devices each; devices per resource at 10 resources.
	byResources := sweep(r.Startup, func(p point) (int, bool) { return p.Resources, p.Devices == 1000 })
	byDevices := sweep(r.Startup, func(p point) (int, bool) { return p.Devices, p.Resources == 10 })
	if len(byResources) < 2 || len(byDevices) < 2 {
		return fmt.Errorf("%s: not enough start-up configurations to plot (run sdp-bench with the full start-up set)", in)
	}
	plots := [][]*plot.Plot{
		{
			chart("Start-up time, 1,000 devices per resource", "resources", "ms to all registered", byResources,
				func(p point) (float64, float64) { return p.HostMs, p.BaselineMs }),
			chart("Peak RSS, 1,000 devices per resource", "resources", "MB (VmHWM)", byResources,
				func(p point) (float64, float64) { return p.HostMB, p.BaselineMB }),
		},
		{
			chart("Start-up time, 10 resources", "devices per resource", "ms to all registered", byDevices,
				func(p point) (float64, float64) { return p.HostMs, p.BaselineMs }),
			chart("Peak RSS, 10 resources", "devices per resource", "MB (VmHWM)", byDevices,
				func(p point) (float64, float64) { return p.HostMB, p.BaselineMB }),
		},
	}
	for _, row := range plots {
		for _, p := range row {
			if p == nil {
				return fmt.Errorf("cannot draw a chart")
			}
		}
	}
	const w, h = 26 * vg.Centimeter, 20 * vg.Centimeter
	if err := write(out, vgsvg.New(w, h), plots); err != nil {
		return err
	}
	if png != "" {
		return write(png, vgimg.PngCanvas{Canvas: vgimg.New(w, h)}, plots)
	}
	return nil
}

// write draws the 2×2 charts on canvas and writes it to path.
func write(path string, canvas interface {
	vg.CanvasSizer
	io.WriterTo
}, plots [][]*plot.Plot) error {
	tiles := draw.Tiles{Rows: 2, Cols: 2, PadX: vg.Centimeter, PadY: vg.Centimeter,
		PadTop: vg.Centimeter / 2, PadBottom: vg.Centimeter / 2, PadLeft: vg.Centimeter / 2, PadRight: vg.Centimeter / 2}
	canvases := plot.Align(plots, tiles, draw.New(canvas))
	for i, row := range plots {
		for j, p := range row {
			p.Draw(canvases[i][j])
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := canvas.WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// sweep picks the points of one sweep, sorted by its x.
func sweep(all []point, pick func(point) (x int, ok bool)) []point {
	var out []point
	for _, p := range all {
		if _, ok := pick(p); ok {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b point) int {
		xa, _ := pick(a)
		xb, _ := pick(b)
		return xa - xb
	})
	return out
}

// chart draws host and baseline against x (log scale), x being resources
// or devices per resource, whichever differs between the points.
func chart(title, xLabel, yLabel string, points []point, y func(point) (host, baseline float64)) *plot.Plot {
	x := func(p point) float64 {
		if points[0].Resources != points[len(points)-1].Resources {
			return float64(p.Resources)
		}
		return float64(p.Devices)
	}
	host := make(plotter.XYs, len(points))
	base := make(plotter.XYs, len(points))
	top := 0.0
	for i, pt := range points {
		h, b := y(pt)
		host[i] = plotter.XY{X: x(pt), Y: h}
		base[i] = plotter.XY{X: x(pt), Y: b}
		top = max(top, h, b)
	}
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = xLabel
	p.Y.Label.Text = yLabel
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Y.Min, p.Y.Max = 0, top*1.3 // room for the legend
	p.Add(plotter.NewGrid())
	for _, s := range []struct {
		name  string
		xys   plotter.XYs
		color color.Color
		dash  []vg.Length
	}{
		{"simple-device-plugin", host, color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}, nil},
		{"minimal plugin (baseline)", base, color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}, []vg.Length{vg.Points(4), vg.Points(3)}},
	} {
		line, dots, err := plotter.NewLinePoints(s.xys)
		if err != nil {
			return nil
		}
		line.Color, line.Dashes = s.color, s.dash
		dots.Color = s.color
		p.Add(line, dots)
		p.Legend.Add(s.name, line, dots)
	}
	p.Legend.Top, p.Legend.Left = true, true
	return p
}
