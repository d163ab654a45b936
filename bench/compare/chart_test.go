package main

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"math"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// parsedChart is what the tests read back from writeChart's SVG through encoding/xml, so that
// they check what a renderer would see (unescaped text, attribute values), not the bytes.
type parsedChart struct {
	bars    []map[string]string // <rect class="bar">'s attributes, in document order
	ratios  []parsedText        // <text class="ratio">, in document order (one per bar)
	benches []string            // <text class="bench">: the rows' headings, units included
	ticks   map[string]float64  // gridline label → its x
	texts   []string            // every <text>, for the title
}

type parsedText struct {
	attrs map[string]string
	text  string
}

func parseChart(t *testing.T, svg []byte) parsedChart {
	t.Helper()
	p := parsedChart{ticks: map[string]float64{}}
	d := xml.NewDecoder(bytes.NewReader(svg))
	var cur *parsedText // the <text> being read, tspans included
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed XML: %v\n%s", err, svg)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			attrs := map[string]string{}
			for _, a := range tok.Attr {
				attrs[a.Name.Local] = a.Value
			}
			switch {
			case tok.Name.Local == "rect" && attrs["class"] == "bar":
				p.bars = append(p.bars, attrs)
			case tok.Name.Local == "text":
				cur = &parsedText{attrs: attrs}
			}
		case xml.CharData:
			if cur != nil {
				cur.text += string(tok)
			}
		case xml.EndElement:
			if tok.Name.Local != "text" || cur == nil {
				continue
			}
			p.texts = append(p.texts, cur.text)
			switch cur.attrs["class"] {
			case "ratio":
				p.ratios = append(p.ratios, *cur)
			case "bench":
				p.benches = append(p.benches, cur.text)
			case "tick":
				p.ticks[cur.text] = chartNum(t, cur.attrs["x"])
			}
			cur = nil
		}
	}
	return p
}

func chartNum(t *testing.T, s string) float64 {
	t.Helper()
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatalf("not a number: %q", s)
	}
	return f
}

func TestWriteChart(t *testing.T) {
	others := []string{"Docker", "Podman", "CNI"}
	tests := []struct {
		name   string
		title  string
		rows   []Row
		others []string
		bars   []string // want "bench/system ratio-label" per bar, in order
		ticks  []string // gridline labels that must be there
		noTick []string // and must not
		check  func(t *testing.T, p parsedChart)
	}{{
		name: "lower and higher is better, missing values",
		rows: []Row{
			{Bench: "attach, 100 containers, median", Unit: "ms", Lower: true,
				Values: map[string]float64{"cnet": 2, "Docker": 21.2, "Podman": 190}},
			{Bench: "embedded DNS", Unit: "q/s",
				Values: map[string]float64{"cnet": 121000, "Docker": 60500, "CNI": 121000}},
		},
		bars:   []string{"attach, 100 containers, median/Docker 10.6×", "attach, 100 containers, median/Podman 95.0×", "embedded DNS/Docker 2.0×", "embedded DNS/CNI 1.0×"},
		ticks:  []string{"0.5×", "1×", "2×", "5×", "10×", "20×", "50×", "100×"},
		noTick: []string{"0.2×", "200×"},
	}, {
		name: "rows with nothing to compare are skipped",
		rows: []Row{
			{Bench: "cnet only", Lower: true, Values: map[string]float64{"cnet": 1}},
			{Bench: "processes started", Lower: true, Values: map[string]float64{"cnet": 0, "Docker": 2000}},
			{Bench: "no cnet", Lower: true, Values: map[string]float64{"Docker": 3, "Podman": 4}},
			{Bench: "kept", Lower: true, Values: map[string]float64{"cnet": 1, "Podman": 3}},
		},
		bars:   []string{"kept/Podman 3.0×"},
		ticks:  []string{"0.5×", "1×", "2×", "5×", "10×"},
		noTick: []string{"0.2×", "20×"},
		check: func(t *testing.T, p parsedChart) {
			if len(p.benches) != 1 || !strings.HasPrefix(p.benches[0], "kept") {
				t.Errorf("row headings %q, want only kept", p.benches)
			}
		},
	}, {
		name:  "labels are escaped",
		title: `cnet <vs> "Docker" & co`,
		rows: []Row{{Bench: "a<b & c>d", Unit: "<ms>", Lower: true,
			Values: map[string]float64{"cnet": 1, "Po&d<man": 5}}},
		others: []string{"Po&d<man"},
		bars:   []string{"a<b & c>d/Po&d<man 5.0×"},
		check: func(t *testing.T, p parsedChart) {
			if !slices.Contains(p.texts, `cnet <vs> "Docker" & co`) {
				t.Errorf("title not found unescaped in %q", p.texts)
			}
			if !slices.Contains(p.texts, "Po&d<man") {
				t.Errorf("system name not found unescaped in %q", p.texts)
			}
			if len(p.benches) != 1 || !strings.HasPrefix(p.benches[0], "a<b & c>d") || !strings.Contains(p.benches[0], "<ms>") {
				t.Errorf("row heading %q", p.benches)
			}
		},
	}, {
		name: "cnet worse: the bar goes left of 1×",
		rows: []Row{{Bench: "throughput", Unit: "Gbit/s",
			Values: map[string]float64{"cnet": 8, "Docker": 10, "Podman": 400}}},
		bars:   []string{"throughput/Docker 0.8×", "throughput/Podman 0.02×"},
		ticks:  []string{"0.02×", "0.05×", "0.1×", "0.2×", "0.5×", "1×", "10×"},
		noTick: []string{"0.01×", "20×"},
		check: func(t *testing.T, p parsedChart) {
			one := p.ticks["1×"]
			for i, want := range []string{"0.8×", "0.02×"} {
				b := p.bars[i]
				x, w := chartNum(t, b["x"]), chartNum(t, b["width"])
				if math.Abs(x+w-one) > 0.2 || x >= one {
					t.Errorf("%s bar spans %.1f–%.1f, want it to end at the 1× line at %.1f", want, x, x+w, one)
				}
			}
			if x := chartNum(t, p.bars[1]["x"]); math.Abs(x-p.ticks["0.02×"]) > 0.2 {
				t.Errorf("0.02× bar starts at %.1f, want the 0.02× line at %.1f", x, p.ticks["0.02×"])
			}
		},
	}, {
		name: "a ratio of 1000 grows the axis",
		rows: []Row{{Bench: "processes", Lower: true,
			Values: map[string]float64{"cnet": 1, "Docker": 1000, "Podman": 1}}},
		bars:  []string{"processes/Docker 1000×", "processes/Podman 1.0×"},
		ticks: []string{"0.5×", "1×", "10×", "100×", "1000×"},
		check: func(t *testing.T, p parsedChart) {
			b := p.bars[0]
			if end := chartNum(t, b["x"]) + chartNum(t, b["width"]); math.Abs(end-p.ticks["1000×"]) > 0.2 {
				t.Errorf("1000× bar ends at %.1f, want the 1000× line at %.1f", end, p.ticks["1000×"])
			}
			if w := chartNum(t, p.bars[1]["width"]); w <= 0 {
				t.Errorf("a 1× bar has width %v; it must still show", w)
			}
		},
	}, {
		name: "nothing at all",
		rows: []Row{{Bench: "x", Values: map[string]float64{"cnet": 1}}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.others == nil {
				tt.others = others
			}
			var buf bytes.Buffer
			if err := writeChart(&buf, tt.title, tt.rows, tt.others); err != nil {
				t.Fatal(err)
			}
			p := parseChart(t, buf.Bytes())
			if len(p.bars) != len(tt.bars) || len(p.ratios) != len(tt.bars) {
				t.Fatalf("%d bars and %d ratio labels, want %d: %v", len(p.bars), len(p.ratios), len(tt.bars), tt.bars)
			}
			for i, want := range tt.bars {
				b, r := p.bars[i], p.ratios[i]
				got := b["data-bench"] + "/" + b["data-system"] + " " + r.text
				if got != want || r.attrs["data-system"] != b["data-system"] {
					t.Errorf("bar %d: %q (label for %q), want %q", i, got, r.attrs["data-system"], want)
				}
			}
			for _, tick := range tt.ticks {
				if _, ok := p.ticks[tick]; !ok {
					t.Errorf("no gridline %s in %v", tick, p.ticks)
				}
			}
			for _, tick := range tt.noTick {
				if _, ok := p.ticks[tick]; ok {
					t.Errorf("gridline %s, want the axis to stop before it", tick)
				}
			}
			if tt.check != nil {
				tt.check(t, p)
			}
		})
	}
}

// TestChartSample renders the sample results to $CHART_SVG (and a PNG beside it when
// rsvg-convert is installed) for looking at the chart after changing it:
//
//	CHART_SVG=/tmp/chart.svg go test ./bench/compare -run ChartSample
func TestChartSample(t *testing.T) {
	out := os.Getenv("CHART_SVG")
	if out == "" {
		t.Skip("set CHART_SVG to a file name to render the sample chart")
	}
	v := func(kv ...float64) map[string]float64 {
		m := map[string]float64{}
		for i, name := range []string{"cnet", "Docker", "Podman", "CNI"}[:len(kv)] {
			if !math.IsNaN(kv[i]) {
				m[name] = kv[i]
			}
		}
		return m
	}
	rows := []Row{
		{Bench: "attach, 1 container", Unit: "ms", Lower: true, Values: v(2.1, 35, 180, 9)},
		{Bench: "attach, 100 containers, median", Unit: "ms", Lower: true, Values: v(2.2, 37, 190, 9.5)},
		{Bench: "attach, 100 containers, p99", Unit: "ms", Lower: true, Values: v(4.4, 53, 260, 14)},
		{Bench: "detach, median", Unit: "ms", Lower: true, Values: v(1.5, 30, 150, 7)},
		{Bench: "1000-port range, wall time", Unit: "s", Lower: true, Values: v(0.05, 9, 0.9)},
		{Bench: "1000-port range, processes started", Unit: "procs", Lower: true, Values: v(0, 2000, 1)},
		{Bench: "embedded DNS", Unit: "q/s", Values: v(121000, 63000, 80000)},
		{Bench: "published port throughput", Unit: "Gbit/s", Values: v(17.9, 3.1, 17.5)},
	}
	var buf bytes.Buffer
	if err := writeChart(&buf, "cnet vs Docker, Podman and CNI", rows, []string{"Docker", "Podman", "CNI"}); err != nil {
		t.Fatal(err)
	}
	parseChart(t, buf.Bytes())
	if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath("rsvg-convert"); err != nil {
		t.Logf("wrote %s; install librsvg2-bin for a PNG", out)
		return
	}
	png := strings.TrimSuffix(out, ".svg") + ".png"
	if msg, err := exec.Command("rsvg-convert", "-o", png, out).CombinedOutput(); err != nil {
		t.Fatalf("rsvg-convert: %v: %s", err, msg)
	}
	t.Logf("wrote %s and %s", out, png)
}
