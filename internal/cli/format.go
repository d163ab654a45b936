package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"strings"
	"text/tabwriter"
	"text/template"
	"unicode"
)

// templateFuncs are the functions docker offers in --format templates, so that format strings
// written for docker work unchanged.
var templateFuncs = template.FuncMap{
	"json": func(v any) (string, error) {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(v); err != nil {
			return "", err
		}
		return strings.TrimSpace(buf.String()), nil
	},
	"split":    strings.Split,
	"join":     strings.Join,
	"title":    titleCase,
	"lower":    strings.ToLower,
	"upper":    strings.ToUpper,
	"pad":      padWithSpace,
	"truncate": truncate,
}

// headerFuncs replace templateFuncs when a table's header row is rendered: the header cells are
// plain names that must come out unchanged whatever function the column applies to its value.
var headerFuncs = template.FuncMap{
	"json":     func(v string) string { return v },
	"split":    func(v, _ string) string { return v },
	"join":     func(v, _ string) string { return v },
	"title":    func(v string) string { return v },
	"lower":    func(v string) string { return v },
	"upper":    func(v string) string { return v },
	"pad":      func(v string, _, _ int) string { return v },
	"truncate": func(v string, _ int) string { return v },
}

func titleCase(s string) string {
	var b strings.Builder
	wordStart := true
	for _, r := range s {
		if wordStart {
			r = unicode.ToTitle(r)
		}
		b.WriteRune(r)
		wordStart = !unicode.IsLetter(r) && !unicode.IsDigit(r) && r != '_' && r != '\''
	}
	return b.String()
}

func padWithSpace(s string, prefix, suffix int) string {
	if s == "" {
		return s
	}
	return strings.Repeat(" ", prefix) + s + strings.Repeat(" ", suffix)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

func parseTemplate(format string, funcs template.FuncMap) (*template.Template, error) {
	t, err := template.New("").Funcs(funcs).Parse(format)
	if err != nil {
		return nil, fmt.Errorf("template parsing error: %w", err)
	}
	return t, nil
}

// headerContext is the value a table's header row is rendered from: column name to header text.
type headerContext map[string]string

// Label names a {{.Label "key"}} column after the last part of the key, as docker does.
func (h headerContext) Label(name string) string {
	parts := strings.Split(name, ".")
	return strings.NewReplacer("-", " ", "_", " ").Replace(parts[len(parts)-1])
}

// writeRows renders list output from a docker --format string: "table TEMPLATE" (a header row,
// columns aligned as docker aligns them), "json" (one JSON object per row) or a bare template
// (one line per row). Rows are values whose methods are the template's placeholders.
func writeRows(out io.Writer, format string, header headerContext, rows []any) error {
	table := strings.HasPrefix(format, "table")
	if table {
		format = format[len("table"):]
	}
	format = strings.Trim(format, " ")
	if format == "json" {
		format = "{{json .}}"
	}
	format = strings.NewReplacer(`\t`, "\t", `\n`, "\n").Replace(format)
	tmpl, err := parseTemplate(format, templateFuncs)
	if err != nil {
		return err
	}
	var body bytes.Buffer
	for _, r := range rows {
		if err := tmpl.Execute(&body, r); err != nil {
			return fmt.Errorf("template parsing error: %w", err)
		}
		body.WriteByte('\n')
	}
	if !table {
		_, err := body.WriteTo(out)
		return err
	}
	tw := tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)
	if ht, err := parseTemplate(format, headerFuncs); err == nil {
		// A header cell that cannot be rendered stays empty rather than hiding the rows.
		_ = ht.Execute(tw, header)
	}
	_, _ = tw.Write([]byte{'\n'})
	_, _ = body.WriteTo(tw)
	return tw.Flush()
}

// rowJSON marshals a row as the object of its placeholders (the methods taking no argument),
// which is what docker's "--format json" prints.
func rowJSON(row any) ([]byte, error) {
	v := reflect.ValueOf(row)
	t := v.Type()
	m := make(map[string]any, t.NumMethod())
	for i := range t.NumMethod() {
		mt := t.Method(i).Type
		if mt.NumIn() != 1 || mt.NumOut() != 1 {
			continue
		}
		m[t.Method(i).Name] = v.Method(i).Call(nil)[0].Interface()
	}
	return json.Marshal(m)
}

// inspected is one object for writeInspect: decoded for templates, and as the daemon sent it.
type inspected struct {
	typed any
	raw   []byte
}

// writeInspect prints objects as docker's inspect commands do. Without a template: one JSON
// array of the daemon's own JSON indented by four spaces, so key order and null-versus-{} are
// the daemon's. With one: the template once per object, tried on the decoded value and, when
// that fails (a key spelled as in the JSON, like .Id), on the JSON as a map.
func writeInspect(out io.Writer, format string, objs []inspected) error {
	if format == "" {
		var arr bytes.Buffer
		arr.WriteByte('[')
		for i, o := range objs {
			if i > 0 {
				arr.WriteByte(',')
			}
			arr.Write(o.raw)
		}
		arr.WriteByte(']')
		var indented bytes.Buffer
		if err := json.Indent(&indented, arr.Bytes(), "", "    "); err != nil {
			return fmt.Errorf("the daemon sent malformed JSON: %w", err)
		}
		indented.WriteByte('\n')
		_, err := indented.WriteTo(out)
		return err
	}
	tmpl, err := parseTemplate(format, templateFuncs)
	if err != nil {
		return &ExitError{Code: 64, Message: err.Error()}
	}
	// On the JSON map a missing key is an error rather than "<no value>", as in docker.
	fallback := template.Must(tmpl.Clone()).Option("missingkey=error")
	var buf bytes.Buffer
	for _, o := range objs {
		var one bytes.Buffer
		if err := tmpl.Execute(&one, o.typed); err != nil {
			one.Reset()
			if fallback.Execute(&one, jsonMap(o.raw)) != nil {
				return fmt.Errorf("template parsing error: %w", err)
			}
		}
		buf.Write(one.Bytes())
		buf.WriteByte('\n')
	}
	_, err = buf.WriteTo(out)
	return err
}

// jsonMap decodes an object for templates that address it by its JSON keys; numbers stay as
// written (no 1e+06).
func jsonMap(raw []byte) any {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if dec.Decode(&v) != nil {
		return nil
	}
	return v
}

// shortID is the 12-character id docker shows unless asked not to truncate.
func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// ellipsis shortens s to n characters, the last one an ellipsis, as docker's COMMAND column.
func ellipsis(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	if n <= 1 {
		return string(r[:n])
	}
	return string(r[:n-1]) + "…"
}

// naturalLess orders names with numbers as people do (net2 before net10), as docker sorts
// network ls.
func naturalLess(a, b string) bool {
	for a != "" && b != "" {
		ca, ra := leadingChunk(a)
		cb, rb := leadingChunk(b)
		da, db := isDigit(ca[0]), isDigit(cb[0])
		if da != db {
			return da // numbers sort before words
		}
		if da {
			na, nb := strings.TrimLeft(ca, "0"), strings.TrimLeft(cb, "0")
			if len(na) != len(nb) {
				return len(na) < len(nb)
			}
			if na != nb {
				return na < nb
			}
			if len(ca) != len(cb) {
				return len(ca) < len(cb) // fewer leading zeros first
			}
		} else if ca != cb {
			return ca < cb
		}
		a, b = ra, rb
	}
	return len(a) < len(b)
}

// leadingChunk splits off the leading run of digits or of non-digits.
func leadingChunk(s string) (chunk, rest string) {
	d := isDigit(s[0])
	i := 1
	for i < len(s) && isDigit(s[i]) == d {
		i++
	}
	return s[:i], s[i:]
}

func isDigit(b byte) bool { return '0' <= b && b <= '9' }

// listFormat is the template a list command (ps, network ls) prints with: the user's, else
// the default table, or only IDs with -q, as docker chooses.
func listFormat(format string, quiet bool, table string) string {
	if format != "" && format != "table" {
		return format
	}
	if quiet {
		return "{{.ID}}"
	}
	return table
}
