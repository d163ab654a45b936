package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

// A Row is one line of the report: one measurement taken on every system that supports it.
type Row struct {
	Bench  string             // what was measured, e.g. "attach, 100 containers, median"
	Unit   string             // "ms", "q/s", "Gbit/s", "procs", "KiB", "rules"
	Lower  bool               // lower is better (times, processes, memory)
	Values map[string]float64 // by system name (system.Name()); absent = not measured (n/a)
}

// advantage is how many times better cnet did than other on this row: > 1 means cnet is
// better, whichever direction the unit goes. ok is false when either value is missing or a
// ratio makes no sense (a zero on either side).
func (r Row) advantage(other string) (ratio float64, ok bool) {
	c, okc := r.Values["cnet"]
	o, oko := r.Values[other]
	if !okc || !oko || c <= 0 || o <= 0 {
		return 0, false
	}
	if r.Lower {
		return o / c, true
	}
	return c / o, true
}

// results collects the rows in the order they are first measured.
type results struct {
	rows []*Row
}

func (r *results) set(bench, unit string, lower bool, sys string, v float64) {
	for _, row := range r.rows {
		if row.Bench == bench {
			row.Values[sys] = v
			return
		}
	}
	r.rows = append(r.rows, &Row{Bench: bench, Unit: unit, Lower: lower, Values: map[string]float64{sys: v}})
}

// percentile is the nearest-rank percentile p (0 < p <= 100) of ds, in milliseconds.
func percentile(ds []time.Duration, p float64) float64 {
	s := slices.Clone(ds)
	slices.Sort(s)
	k := max(int(math.Ceil(p/100*float64(len(s))))-1, 0)
	return float64(s[k]) / float64(time.Millisecond)
}

func (r *results) attach(sys string, sizes []int, on, off []time.Duration) {
	for _, n := range sizes {
		if n == 1 {
			r.set("attach, the 1st container", "ms", true, sys, percentile(on[:1], 50))
			continue
		}
		r.set(fmt.Sprintf("attach, %d containers one at a time, median", n), "ms", true, sys, percentile(on[:n], 50))
		r.set(fmt.Sprintf("attach, %d containers one at a time, p99", n), "ms", true, sys, percentile(on[:n], 99))
	}
	n := len(off)
	r.set(fmt.Sprintf("detach, %d containers one at a time, median", n), "ms", true, sys, percentile(off, 50))
	r.set(fmt.Sprintf("detach, %d containers one at a time, p99", n), "ms", true, sys, percentile(off, 99))
}

// attachOther records the like-with-like attach rows: through each system's command line
// (client start included) and through the Engine API; nil when the system has no such way.
func (r *results) attachOther(sys string, n int, cli, api []time.Duration) {
	if cli != nil {
		r.set(fmt.Sprintf("attach through the CLI (cnet/docker/podman network connect, cnitool add), %d, median", n), "ms", true, sys, percentile(cli, 50))
	}
	if api != nil {
		r.set(fmt.Sprintf("attach through the Engine API (no client process), %d, median", n), "ms", true, sys, percentile(api, 50))
	}
}

func (r *results) publish(sys string, ports int, p PublishResult) {
	b := fmt.Sprintf("publish a %d-port range: ", ports)
	r.set(b+"run command, wall time", "s", true, sys, p.Wall.Seconds())
	r.set(b+"processes started", "", true, sys, float64(p.Procs))
	if p.DaemonMemKB >= 0 {
		r.set(b+"daemon memory growth", "MiB", true, sys, float64(p.DaemonMemKB)/1024)
	}
	r.set(b+"firewall rules added", "", true, sys, float64(p.Rules))
	r.set(b+"set/map elements added", "", true, sys, float64(p.Elements))
}

func (r *results) dns(sys string, d DNSResult) {
	r.set("embedded DNS, dnsperf inside a container: queries/s", "q/s", false, sys, d.QPS)
	r.set("embedded DNS: queries lost", "", true, sys, float64(d.Lost))
	r.set("embedded DNS: average latency", "ms", true, sys, float64(d.AvgLatency)/float64(time.Millisecond))
}

func (r *results) dataPath(sys string, d DataPathResult) {
	if d.Published > 0 {
		r.set("iperf3 host → 127.0.0.1:published port", "Gbit/s", false, sys, d.Published)
		r.set("published port ÷ host → container direct", "%", false, sys, 100*d.Published/d.Direct)
	}
	r.set("iperf3 host → container IP", "Gbit/s", false, sys, d.Direct)
	r.set("iperf3 container → container, one bridge", "Gbit/s", false, sys, d.CtrToCtr)
	if d.Published > 0 {
		r.set("processes carrying the published port", "", true, sys, float64(d.ProxyProcs))
	}
}

func (r *results) scale(sys string, n int, s ScaleResult) {
	r.set(fmt.Sprintf("daemon RSS with %d containers", n), "MiB", true, sys, float64(s.DaemonRSSKB)/1024)
	r.set(fmt.Sprintf("daemon restart until %d containers listed running", n), "s", true, sys, s.Restart.Seconds())
}

// write prints the table, writes it to <out>/<date>.md and the chart to <out>/<date>.svg.
func (r *results) write(cfg config, env *Env) error {
	// The goal for the data path is relative to the machine's limit: cnet's published
	// port against the hand-made veth+bridge, host → "container", without and with conntrack.
	var pub, direct *Row
	for _, row := range r.rows {
		switch row.Bench {
		case "iperf3 host → 127.0.0.1:published port":
			pub = row
		case "iperf3 host → container IP":
			direct = row
		}
	}
	if pub != nil && direct != nil {
		for _, b := range []string{baselineName(false), baselineName(true)} {
			c, okc := pub.Values["cnet"]
			base, okb := direct.Values[b]
			if okc && okb {
				r.set("cnet's published port ÷ "+b+" host → container", "%", false, "cnet", 100*c/base)
			}
		}
	}
	systems := slices.Clone(cfg.systems)
	if i := slices.Index(systems, "baseline"); i >= 0 {
		systems = slices.Insert(systems, i+1, baselineName(true))
	}
	var cols, others []string
	for _, s := range systems {
		for _, row := range r.rows {
			if _, ok := row.Values[s]; ok {
				cols = append(cols, s)
				if s != "cnet" {
					others = append(others, s)
				}
				break
			}
		}
	}
	date := time.Now().UTC()
	title := fmt.Sprintf("cnet side by side, %s, %d cores (%s), kernel %s", date.Format("2006-01-02"), runtime.NumCPU(), cpuModel(), kernel())
	var b strings.Builder
	fmt.Fprintf(&b, "# %s\n\n", title)
	fmt.Fprintf(&b, "Versions: %s. Generated by `sudo bench/compare/run.sh`.\n\n", versions())
	fmt.Fprintf(&b, "| benchmark | %s |", strings.Join(cols, " | "))
	for _, o := range others {
		fmt.Fprintf(&b, " cnet vs %s |", o)
	}
	b.WriteString("\n|---|" + strings.Repeat("---:|", len(cols)+len(others)) + "\n")
	var rows []Row
	for _, row := range r.rows {
		rows = append(rows, *row)
		fmt.Fprintf(&b, "| %s |", row.Bench)
		for _, c := range cols {
			if v, ok := row.Values[c]; ok {
				fmt.Fprintf(&b, " %s |", formatValue(v, row.Unit))
			} else {
				b.WriteString(" n/a |")
			}
		}
		for _, o := range others {
			if x, ok := row.advantage(o); ok {
				fmt.Fprintf(&b, " %s |", formatRatio(x))
			} else {
				b.WriteString(" |")
			}
		}
		b.WriteString("\n")
	}
	b.WriteString("\n\"cnet vs X\": how many times better cnet did (> 1×: cnet better, whichever way the unit goes).\n")
	fmt.Fprintf(&b, "\n![cnet's advantage, as a chart](%s.svg)\n", date.Format("2006-01-02"))
	fmt.Print(b.String())
	if err := os.MkdirAll(cfg.out, 0o755); err != nil {
		return err
	}
	base := filepath.Join(cfg.out, date.Format("2006-01-02"))
	if err := os.WriteFile(base+".md", []byte(b.String()), 0o644); err != nil {
		return err
	}
	data, err := json.MarshalIndent(plotData{Title: title, Others: others, Rows: rows}, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(base+".json", data, 0o644); err != nil {
		return err
	}
	if err := replot(base + ".json"); err != nil {
		return err
	}
	logf("written to %s.md, .json and .svg", base)
	return nil
}

// plotData is what the chart is drawn from, kept beside the table so that the chart can be
// drawn again (a new look, a fix) from the same measurements: compare -replot FILE.json.
type plotData struct {
	Title  string
	Others []string
	Rows   []Row
}

// replot draws FILE.svg from FILE.json.
func replot(jsonFile string) error {
	data, err := os.ReadFile(jsonFile)
	if err != nil {
		return err
	}
	var p plotData
	if err := json.Unmarshal(data, &p); err != nil {
		return fmt.Errorf("reading %s: %w", jsonFile, err)
	}
	f, err := os.Create(strings.TrimSuffix(jsonFile, ".json") + ".svg")
	if err != nil {
		return err
	}
	if err := writeChart(f, p.Title, p.Rows, p.Others); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func formatValue(v float64, unit string) string {
	var s string
	switch {
	case unit == "q/s":
		s = fmt.Sprintf("%.0f", v)
	case v == math.Trunc(v) && math.Abs(v) < 1e6:
		s = fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 100:
		s = fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 10:
		s = fmt.Sprintf("%.1f", v)
	case math.Abs(v) >= 1:
		s = fmt.Sprintf("%.2f", v)
	default:
		s = fmt.Sprintf("%.3g", v) // 0.0437 s: the table's ratios are computed from these
	}
	if unit != "" {
		s += " " + unit
	}
	return s
}

func formatRatio(x float64) string {
	if x >= 10 {
		return fmt.Sprintf("%.0f×", x)
	}
	return fmt.Sprintf("%.2f×", x)
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "model name"); ok {
			return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
		}
	}
	return "unknown CPU"
}

func kernel() string {
	out, _ := run("uname", "-r")
	return strings.TrimSpace(out)
}

// versions names what was measured, from Debian's package database.
func versions() string {
	var vs []string
	for _, p := range []string{"docker.io", "podman", "netavark", "aardvark-dns", "containernetworking-plugins", "dnsperf", "iperf3"} {
		if out, err := run("dpkg-query", "-W", "-f", "${Version}", p); err == nil {
			vs = append(vs, p+" "+out)
		}
	}
	return strings.Join(vs, ", ")
}
