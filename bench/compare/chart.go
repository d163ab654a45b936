package main

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// chartPalette is colour-blind safe (Okabe–Ito); systems get colours in the order of others, so
// the same run's charts agree with each other and with the table's column order.
var chartPalette = []string{"#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442"}

// chartBar is one (row, other system) pair that has a ratio.
type chartBar struct {
	system string
	colour string
	ratio  float64
}

// writeChart writes an SVG horizontal bar chart of how many times better cnet did than each
// system in others on each row (Row.advantage), on a log10 axis so that 0.5× and 50× are as far
// from 1× as they are different. Bars start at the 1× line: right means cnet was better, left
// (paler, on a tinted background) that it was worse. Rows where no other system has a ratio are
// left out; if none has, the SVG says so instead of failing, so that the report still renders.
func writeChart(w io.Writer, title string, rows []Row, others []string) error {
	// The chart is plain hand-written SVG so that the report needs no plotting library or
	// service and renders the same in a browser, on GitHub and in rsvg-convert. It is sized for
	// GitHub's README column (about 900 px), where it is shown at 1:1, so these font sizes are
	// the sizes a reader sees.
	const (
		chartWidth  = 900
		chartMargin = 16
		minNameRoom = 70 // system names left of the bars, right-aligned: at least this wide
		leftRoom    = 56 // between names and plot, at least: room for a label "0.05×" left of a bar
		rightRoom   = 52 // right of the plot, at least: room for a label "1000×"
		groupHead   = 22 // a row's heading above its bars
		barPitch    = 22 // one bar and the gap below it
		barHeight   = 16
		groupGap    = 12  // after a row's last bar
		plotTop     = 112 // below title, caption, legend and the upper tick labels
		chartFont   = "sans-serif"
		worseShade  = "#fbeeee" // left of 1×: where cnet did worse
		gridColour  = "#d8d8d8"
		inkColour   = "#222"
		mutedColour = "#666"
	)

	type group struct {
		row  Row
		bars []chartBar
	}
	var groups []group
	minR, maxR := math.Inf(1), math.Inf(-1)
	nbars := 0
	used := map[string]bool{} // the legend lists only these: no colour the chart never uses
	for _, r := range rows {
		var g group
		for i, o := range others {
			ratio, ok := r.advantage(o)
			if !ok || math.IsInf(ratio, 0) || math.IsNaN(ratio) {
				continue
			}
			g.bars = append(g.bars, chartBar{o, chartPalette[i%len(chartPalette)], ratio})
			used[o] = true
			minR, maxR = math.Min(minR, ratio), math.Max(maxR, ratio)
		}
		if len(g.bars) > 0 {
			g.row = r
			groups = append(groups, g)
			nbars += len(g.bars)
		}
	}
	// The axis always shows at least 0.5×–10×, so that small differences look small.
	lo, hi := chartNiceDown(math.Min(0.5, minR)), chartNiceUp(math.Max(10, maxR))

	// The plot ends 3 px below the last bar; the lower tick labels and a margin follow.
	plotBottom := float64(plotTop + len(groups)*(groupHead+groupGap) + nbars*barPitch - groupGap - (barPitch - barHeight) + 3)
	height := int(plotBottom) + 28
	if len(groups) == 0 {
		height = plotTop + 20
	}
	// Extreme ratios get the room their labels need: past the SVG's edge they would be cut off.
	left := float64(leftRoom)
	if minR < 1 {
		left = math.Max(leftRoom, chartTextWidth(chartRatio(minR), 13)+12)
	}
	nameWidth := minNameRoom
	for _, o := range others {
		nameWidth = max(nameWidth, int(math.Ceil(chartTextWidth(o, 12))))
	}
	plotL := float64(chartMargin+nameWidth) + left
	plotR := chartWidth - chartMargin - math.Max(rightRoom, chartTextWidth(chartRatio(maxR), 13)+12)
	x := func(v float64) float64 {
		return plotL + (math.Log10(v)-math.Log10(lo))/(math.Log10(hi)-math.Log10(lo))*(plotR-plotL)
	}

	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="%s" font-size="12" fill="%s">`+"\n",
		chartWidth, height, chartWidth, height, chartFont, inkColour)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="#fff"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%d" y="30" font-size="18" font-weight="bold">%s</text>`+"\n", chartMargin, chartEsc(title))
	fmt.Fprintf(&b, `<text x="%d" y="52" font-size="13" fill="%s">bars: how many times better cnet did; right of 1× = cnet better</text>`+"\n",
		chartMargin, mutedColour)
	// The legend: one swatch per system that has at least one bar, in the order of others.
	lx := float64(chartMargin)
	for i, o := range others {
		if !used[o] {
			continue
		}
		fmt.Fprintf(&b, `<rect class="legend" x="%.1f" y="66" width="14" height="14" rx="2" fill="%s"/>`, lx, chartPalette[i%len(chartPalette)])
		fmt.Fprintf(&b, `<text x="%.1f" y="78" font-size="13">%s</text>`+"\n", lx+20, chartEsc(o))
		lx += 20 + chartTextWidth(o, 13) + 22
	}
	if len(groups) == 0 {
		fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="13" fill="%s">no measurement to compare</text>`+"\n", chartMargin, plotTop, mutedColour)
		b.WriteString("</svg>\n")
		_, err := w.Write(b.Bytes())
		return err
	}

	// Gridline labels above and below the plot. The lines themselves are drawn row by row
	// behind the bars, stopping at the rows' headings so that those stay readable.
	ts := chartTicks(lo, hi)
	// Label the 2× and 5× lines only if the widest label fits the narrowest step (1× to 2×), and
	// only every n-th power of ten (1× always) if even those would collide on a very long axis.
	pxPerDecade := (plotR - plotL) / (math.Log10(hi) - math.Log10(lo))
	widest := 0.0
	for _, t := range ts {
		widest = math.Max(widest, chartTextWidth(chartTick(t), 11)+10)
	}
	all, every := pxPerDecade*math.Log10(2) >= widest, int(math.Ceil(widest/pxPerDecade))
	for _, t := range ts {
		decade := int(math.Round(math.Log10(t)))
		if all || (chartPow10(t) && (decade%every+every)%every == 0) {
			for _, ty := range []float64{plotTop - 8, plotBottom + 15} {
				fmt.Fprintf(&b, `<text class="tick" x="%.1f" y="%.1f" font-size="11" fill="%s" text-anchor="middle">%s</text>`+"\n",
					x(t), ty, mutedColour, chartEsc(chartTick(t)))
			}
		}
	}

	y := float64(plotTop)
	for _, g := range groups {
		y += groupHead
		fmt.Fprintf(&b, `<text class="bench" x="%d" y="%.1f" font-size="13" font-weight="bold">%s<tspan dx="6" font-weight="normal" fill="%s">%s</tspan></text>`+"\n",
			chartMargin, y-7, chartEsc(g.row.Bench), mutedColour, chartEsc(chartUnitNote(g.row)))
		py0, py1 := y-3, y+float64(len(g.bars)*barPitch-(barPitch-barHeight))+3
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>`+"\n", plotL, py0, x(1)-plotL, py1-py0, worseShade)
		for _, t := range ts {
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s"/>`+"\n", x(t), py0, x(t), py1, gridColour)
		}
		for _, bar := range g.bars {
			x0, x1 := x(1), x(bar.ratio)
			if math.Abs(x1-x0) < 2 { // a tie still gets a visible sliver
				x1 = x0 + 2
			}
			left, width := math.Min(x0, x1), math.Abs(x1-x0)
			opacity, anchor, lxText := "1", "start", math.Max(x0, x1)+5
			if bar.ratio < 1 {
				opacity, anchor, lxText = "0.45", "end", left-5
			}
			base := y + barHeight/2 + 4 // centres 12 px text on the bar (dominant-baseline is not everywhere)
			fmt.Fprintf(&b, `<text x="%d" y="%.1f" font-size="12" fill="%s" text-anchor="end">%s</text>`,
				chartMargin+nameWidth, base, mutedColour, chartEsc(bar.system))
			fmt.Fprintf(&b, `<rect class="bar" data-bench="%s" data-system="%s" data-ratio="%s" x="%.1f" y="%.1f" width="%.1f" height="%d" fill="%s" fill-opacity="%s"/>`,
				chartEsc(g.row.Bench), chartEsc(bar.system), strconv.FormatFloat(bar.ratio, 'g', -1, 64), left, y, width, barHeight, bar.colour, opacity)
			fmt.Fprintf(&b, `<text class="ratio" data-system="%s" x="%.1f" y="%.1f" font-size="12" font-weight="bold" text-anchor="%s">%s</text>`+"\n",
				chartEsc(bar.system), lxText, base, anchor, chartEsc(chartRatio(bar.ratio)))
			y += barPitch
		}
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="1.5"/>`+"\n", x(1), py0, x(1), py1, inkColour)
		y += groupGap
	}
	b.WriteString("</svg>\n")
	_, err := w.Write(b.Bytes())
	return err
}

// chartUnitNote says what the row's ratio was computed from, so a reader need not look up the table.
func chartUnitNote(r Row) string {
	dir := "higher is better"
	if r.Lower {
		dir = "lower is better"
	}
	if r.Unit == "" {
		return "(" + dir + ")"
	}
	return "(" + r.Unit + ", " + dir + ")"
}

// chartRatio prints a ratio with the precision that matters at its size: "10.6×", "857×", "0.8×", "0.05×".
func chartRatio(r float64) string {
	switch {
	case r >= 99.95:
		return strconv.FormatFloat(r, 'f', 0, 64) + "×"
	case r >= 0.995:
		return strconv.FormatFloat(r, 'f', 1, 64) + "×"
	default:
		return strconv.FormatFloat(r, 'g', 2, 64) + "×"
	}
}

// chartTick prints a 1-2-5 gridline value without float noise: "0.5×", "1×", "200×".
func chartTick(t float64) string {
	return strconv.FormatFloat(t, 'f', -1, 64) + "×"
}

// chartTicks returns the 1-2-5 values from lo to hi, both included; lo and hi are themselves such
// values (chartNiceDown, chartNiceUp), which keeps the grid on round numbers a reader can read off.
func chartTicks(lo, hi float64) []float64 {
	var ts []float64
	for e := int(math.Floor(math.Log10(lo))); ; e++ {
		for _, m := range []float64{1, 2, 5} {
			t := chartStep(m, e)
			if t > hi*(1+1e-9) {
				return ts
			}
			if t >= lo*(1-1e-9) {
				ts = append(ts, t)
			}
		}
	}
}

// chartStep is m·10^e, computed by dividing for negative e so that 0.2 is exactly the float 0.2.
func chartStep(m float64, e int) float64 {
	if e < 0 {
		return m / math.Pow10(-e)
	}
	return m * math.Pow10(e)
}

// chartNiceDown is the largest 1-2-5 value ≤ v; chartNiceUp the smallest ≥ v (v > 0).
func chartNiceDown(v float64) float64 {
	e := int(math.Floor(math.Log10(v)))
	for _, m := range []float64{10, 5, 2, 1} {
		if t := chartStep(m, e); t <= v*(1+1e-9) {
			return t
		}
	}
	return chartStep(1, e-1) // Log10 rounded up across a power of ten
}

func chartNiceUp(v float64) float64 {
	e := int(math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if t := chartStep(m, e); t >= v*(1-1e-9) {
			return t
		}
	}
	return chartStep(2, e+1)
}

// chartPow10 tells the gridlines that always get a label (1×, 10×, ...) from 2× and 5×.
func chartPow10(t float64) bool {
	l := math.Log10(t)
	return math.Abs(l-math.Round(l)) < 1e-9
}

// chartTextWidth estimates a string's width in pixels in the chart's sans-serif font (about 0.6 em
// per character), enough to space the legend and decide which tick labels fit.
func chartTextWidth(s string, size float64) float64 {
	return float64(len([]rune(s))) * size * 0.6
}

// chartEsc escapes text for both element content and attribute values: rows' labels are free text.
func chartEsc(s string) string {
	var sb strings.Builder
	_ = xml.EscapeText(&sb, []byte(s)) // a strings.Builder never fails
	return sb.String()
}
