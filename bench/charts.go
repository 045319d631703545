package main

import (
	"fmt"
	"image/color"
	"os"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Charts of one run or several side by side: the timeline (connections and
// server memory over time) and the latency percentiles.

// renderCharts writes name-timeline.png and name-latency.png into dir.
func renderCharts(runs []*Result, dir, name string) error {
	if err := timelineChart(runs, filepath.Join(dir, name+"-timeline.png")); err != nil {
		return fmt.Errorf("timeline chart: %w", err)
	}
	if err := latencyChart(runs, filepath.Join(dir, name+"-latency.png")); err != nil {
		return fmt.Errorf("latency chart: %w", err)
	}
	return nil
}

func runName(r *Result, i int) string {
	if r.Label != "" {
		return r.Label
	}
	return fmt.Sprintf("run %d (%s)", i+1, r.Mode)
}

func timelineChart(runs []*Result, path string) error {
	conns, mem := plot.New(), plot.New()
	conns.Title.Text = "Open connections"
	conns.X.Label.Text, conns.Y.Label.Text = "seconds", "connections"
	mem.Title.Text = "Server memory (RSS, all processes)"
	mem.X.Label.Text, mem.Y.Label.Text = "seconds", "MiB"
	for i, r := range runs {
		cx, mx := make(plotter.XYs, len(r.Timeline)), make(plotter.XYs, len(r.Timeline))
		for j, s := range r.Timeline {
			cx[j] = plotter.XY{X: s.T, Y: float64(s.Open)}
			mx[j] = plotter.XY{X: s.T, Y: float64(s.RSSKiB) / 1024}
		}
		for _, pl := range []struct {
			p   *plot.Plot
			xys plotter.XYs
		}{{conns, cx}, {mem, mx}} {
			l, err := plotter.NewLine(pl.xys)
			if err != nil {
				return err
			}
			l.Color = plotutil.Color(i)
			l.Width = vg.Points(1.5)
			pl.p.Add(l)
			pl.p.Legend.Add(runName(r, i), l)
		}
	}
	for _, p := range []*plot.Plot{conns, mem} {
		p.Y.Min = 0
		p.Legend.Top, p.Legend.Left = true, true
		p.Add(plotter.NewGrid())
	}
	return saveTiles([][]*plot.Plot{{conns}, {mem}}, 9*vg.Inch, 7*vg.Inch, path)
}

// mainLatency is the latency a run is about: echo RTT, broadcast delivery,
// or the handshake for idle runs.
func mainLatency(r *Result) (Percentiles, string) {
	switch {
	case r.Echo != nil:
		return r.Echo.RTT, "echo round trip"
	case r.Broadcast != nil:
		return r.Broadcast.Latency, "broadcast delivery"
	}
	return r.Handshake, "handshake"
}

func latencyChart(runs []*Result, path string) error {
	p := plot.New()
	_, what := mainLatency(runs[0])
	p.Title.Text = "Latency percentiles: " + what
	p.Y.Label.Text = "milliseconds"
	labels := []string{"p50", "p90", "p99", "p99.9", "max"}
	w := vg.Points(60 / float64(len(runs)))
	for i, r := range runs {
		lat, _ := mainLatency(r)
		bars, err := plotter.NewBarChart(plotter.Values{lat.P50, lat.P90, lat.P99, lat.P999, lat.Max}, w)
		if err != nil {
			return err
		}
		bars.Color = plotutil.Color(i)
		bars.LineStyle.Color = color.Black
		bars.Offset = vg.Length(float64(i)-float64(len(runs)-1)/2) * w
		p.Add(bars)
		p.Legend.Add(runName(r, i), bars)
	}
	p.NominalX(labels...)
	p.Legend.Top, p.Legend.Left = true, true
	p.Add(plotter.NewGrid())
	return p.Save(8*vg.Inch, 5*vg.Inch, path)
}

func saveTiles(plots [][]*plot.Plot, w, h vg.Length, path string) error {
	img := vgimg.New(w, h)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: len(plots), Cols: len(plots[0]), PadX: vg.Millimeter * 4, PadY: vg.Millimeter * 4,
		PadTop: vg.Millimeter * 2, PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 2}
	canvases := plot.Align(plots, tiles, dc)
	for j := range plots {
		for i := range plots[j] {
			plots[j][i].Draw(canvases[j][i])
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
