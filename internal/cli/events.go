package cli

import (
	"fmt"
	"sort"
	"strings"
	"text/template"
	"time"

	"github.com/spf13/cobra"

	"github.com/cnet-dev/cnet/internal/events"
)

// rfc3339NanoFixed is Docker's time format for events: always nine fraction digits.
const rfc3339NanoFixed = "2006-01-02T15:04:05.000000000Z07:00"

func newEventsCommand() *cobra.Command {
	var since, until, format string
	var filters []string
	cmd := &cobra.Command{
		Use:   "events [OPTIONS]",
		Short: "Get real time events from the server",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := parseFilterFlags(filters)
			if err != nil {
				return err
			}
			var tmpl *template.Template
			if format != "" {
				if tmpl, err = parseTemplate(format, templateFuncs); err != nil {
					return err
				}
			}
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			var werr error
			err = c.Events(cmd.Context(), timestampArg(since), timestampArg(until), f, func(m events.Message) {
				if tmpl != nil {
					if werr == nil {
						werr = tmpl.Execute(out, m)
						fmt.Fprintln(out)
					}
					return
				}
				fmt.Fprintln(out, eventLine(m))
			})
			if err != nil {
				return err
			}
			return werr
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&since, "since", "", "Show all events created since timestamp")
	fl.StringVar(&until, "until", "", "Stream events until this timestamp")
	addList(fl, &filters, "filter", "f", "Filter output based on conditions provided")
	fl.StringVar(&format, "format", "", "Format the output using the given Go template")
	return cmd
}

// timestampArg turns a relative --since/--until ("10m") into Unix seconds here, as docker's
// CLI does, so that "ago" is the client's now; other forms go as given.
func timestampArg(v string) string {
	if d, err := time.ParseDuration(v); err == nil && v != "0" {
		t := time.Now().Add(-d)
		return fmt.Sprintf("%d.%09d", t.Unix(), t.Nanosecond())
	}
	return v
}

// eventLine is docker events' line: time, type, action, actor, then the attributes sorted.
func eventLine(m events.Message) string {
	line := m.When().Format(rfc3339NanoFixed) + " " + m.Type + " " + m.Action + " " + m.Actor.ID
	if len(m.Actor.Attributes) > 0 {
		keys := make([]string, 0, len(m.Actor.Attributes))
		for k := range m.Actor.Attributes {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		attrs := make([]string, len(keys))
		for i, k := range keys {
			attrs[i] = k + "=" + m.Actor.Attributes[k]
		}
		line += " (" + strings.Join(attrs, ", ") + ")"
	}
	return line
}
