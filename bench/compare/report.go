package main

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
