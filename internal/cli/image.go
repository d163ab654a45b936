package cli

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cnet-dev/cnet/internal/api"
)

// Images: `images`, `load`, `rmi`, `tag` and the `image` group, with Docker's tables, --format
// and JSON.

const defaultImageTable = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"

var imageHeader = headerContext{
	"Repository":   "REPOSITORY",
	"Tag":          "TAG",
	"ID":           "IMAGE ID",
	"CreatedSince": "CREATED",
	"CreatedAt":    "CREATED AT",
	"Size":         "SIZE",
	"Digest":       "DIGEST",
}

func newImageCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "image COMMAND", Short: "Manage images", Args: noSubcommand, RunE: showHelp}
	ls := newImagesCommand()
	ls.Use, ls.Aliases = "ls [OPTIONS]", []string{"list"}
	rm := newRmiCommand()
	rm.Use, rm.Aliases = "rm [OPTIONS] IMAGE [IMAGE...]", []string{"remove"}
	cmd.AddCommand(ls, rm, newLoadCommand(), newTagCommand(), newImageInspectCommand(), newSaveCommand(), newImportCommand(), newImagePruneCommand(), newPullCommand())
	return cmd
}

type imageListOptions struct {
	quiet   bool
	noTrunc bool
	format  string
	filters []string
}

func newImagesCommand() *cobra.Command {
	var o imageListOptions
	cmd := &cobra.Command{
		Use:   "images [OPTIONS] [REPOSITORY[:TAG]]",
		Short: "List images",
		Args:  rangeArgs(0, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			filter, err := parseFilterFlags(o.filters)
			if err != nil {
				return err
			}
			if len(args) == 1 {
				filter.Add("reference", args[0])
			}
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			list, err := c.ImageList(cmd.Context(), filter)
			if err != nil {
				return err
			}
			return writeImages(cmd.OutOrStdout(), o, list, time.Now())
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&o.quiet, "quiet", "q", false, "Only show image IDs")
	f.BoolVar(&o.noTrunc, "no-trunc", false, "Don't truncate output")
	f.StringVar(&o.format, "format", "", "Pretty-print images using a Go template")
	addList(f, &o.filters, "filter", "f", "Filter output based on conditions provided")
	return cmd
}

// writeImages prints one row per reference (an untagged image as <none> <none>), newest
// first, as docker does; -q prints each image's ID once.
func writeImages(out io.Writer, o imageListOptions, list []api.ImageSummary, now time.Time) error {
	sort.SliceStable(list, func(i, j int) bool { return list[i].Created > list[j].Created })
	var rows []any
	seen := map[string]bool{}
	for _, img := range list {
		if o.quiet {
			if !seen[img.ID] {
				seen[img.ID] = true
				rows = append(rows, imageRow{img: img, repo: "<none>", tag: "<none>", trunc: !o.noTrunc, now: now})
			}
			continue
		}
		if len(img.RepoTags) == 0 {
			rows = append(rows, imageRow{img: img, repo: "<none>", tag: "<none>", trunc: !o.noTrunc, now: now})
		}
		for _, rt := range img.RepoTags {
			i := strings.LastIndex(rt, ":")
			rows = append(rows, imageRow{img: img, repo: rt[:i], tag: rt[i+1:], trunc: !o.noTrunc, now: now})
		}
	}
	return writeRows(out, listFormat(o.format, o.quiet, defaultImageTable), imageHeader, rows)
}

// imageRow is one image reference as --format templates see it.
type imageRow struct {
	img       api.ImageSummary
	repo, tag string
	trunc     bool
	now       time.Time
}

func (r imageRow) Repository() string { return r.repo }
func (r imageRow) Tag() string        { return r.tag }
func (r imageRow) Digest() string     { return "<none>" }
func (r imageRow) ID() string {
	if r.trunc {
		return shortID(strings.TrimPrefix(r.img.ID, "sha256:"))
	}
	return r.img.ID
}
func (r imageRow) CreatedSince() string {
	return api.HumanDuration(r.now.Sub(time.Unix(r.img.Created, 0))) + " ago"
}
func (r imageRow) CreatedAt() string {
	return time.Unix(r.img.Created, 0).Format("2006-01-02 15:04:05 -0700 MST")
}
func (r imageRow) Size() string { return humanSize(r.img.Size) }

func humanSize(n int64) string { return api.HumanSize(n) }

func newLoadCommand() *cobra.Command {
	var input string
	var quiet bool
	cmd := &cobra.Command{
		Use:   "load [OPTIONS]",
		Short: "Load an image from a tar archive or STDIN",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var r io.Reader = cmd.InOrStdin()
			if input != "" {
				f, err := os.Open(input)
				if err != nil {
					return err
				}
				defer f.Close()
				r = f
			}
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			lines, err := c.ImageLoad(cmd.Context(), r)
			for _, l := range lines {
				fmt.Fprintln(cmd.OutOrStdout(), l)
			}
			return err
		},
	}
	cmd.Flags().StringVarP(&input, "input", "i", "", "Read from tar archive file, instead of STDIN")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "Suppress the load output")
	return cmd
}

func newRmiCommand() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "rmi [OPTIONS] IMAGE [IMAGE...]",
		Short: "Remove one or more images",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			return eachArg(args, func(name string) error {
				items, err := c.ImageRemove(cmd.Context(), name, force)
				if err != nil {
					return err
				}
				for _, it := range items {
					if it.Untagged != "" {
						fmt.Fprintln(cmd.OutOrStdout(), "Untagged: "+it.Untagged)
					}
					if it.Deleted != "" {
						fmt.Fprintln(cmd.OutOrStdout(), "Deleted: "+it.Deleted)
					}
				}
				return nil
			})
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Force removal of the image")
	return cmd
}

func newTagCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "tag SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]",
		Short: "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE",
		Args:  exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			return c.ImageTag(cmd.Context(), args[0], args[1])
		},
	}
}

func newImageInspectCommand() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "inspect [OPTIONS] IMAGE [IMAGE...]",
		Short: "Display detailed information on one or more images",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			var objs []inspected
			errs := eachArg(args, func(ref string) error {
				img, raw, err := c.ImageInspectWithRaw(cmd.Context(), ref)
				if err == nil {
					objs = append(objs, inspected{typed: img, raw: raw})
				}
				return err
			})
			if isConnectError(errs) {
				return errs
			}
			if err := writeInspect(cmd.OutOrStdout(), format, objs); err != nil {
				return err
			}
			return errs
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "", "Format the output using the given Go template")
	return cmd
}

func newSaveCommand() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "save [OPTIONS] IMAGE [IMAGE...]",
		Short: "Save one or more images to a tar archive (streamed to STDOUT by default)",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			w := cmd.OutOrStdout()
			if output != "" {
				f, err := os.Create(output)
				if err != nil {
					return err
				}
				defer f.Close()
				w = f
			} else if f, ok := w.(*os.File); ok && isTerminal(f) {
				return fmt.Errorf("cowardly refusing to save to a terminal. Use the -o flag or redirect")
			}
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			return c.ImageSave(cmd.Context(), w, args)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "Write to a file, instead of STDOUT")
	return cmd
}

func newImportCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "import [OPTIONS] file|- [REPOSITORY[:TAG]]",
		Short: "Import the contents from a tarball to create a filesystem image",
		Args:  rangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var r io.Reader = cmd.InOrStdin()
			if args[0] != "-" {
				f, err := os.Open(args[0])
				if err != nil {
					return err
				}
				defer f.Close()
				r = f
			}
			ref := ""
			if len(args) == 2 {
				ref = args[1]
			}
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			id, err := c.ImageImport(cmd.Context(), r, ref)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), id)
			return nil
		},
	}
}

func newImagePruneCommand() *cobra.Command {
	var force, all bool
	var filters []string
	cmd := &cobra.Command{
		Use:   "prune [OPTIONS]",
		Short: "Remove unused images",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := parseFilterFlags(filters)
			if err != nil {
				return err
			}
			if all {
				f.Add("dangling", "false")
			}
			warning := "WARNING! This will remove all dangling images."
			if all {
				warning = "WARNING! This will remove all images without at least one container associated to them."
			}
			if !force && !confirm(cmd, warning+"\nAre you sure you want to continue? [y/N] ") {
				return nil
			}
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			resp, err := c.ImagePrune(cmd.Context(), f)
			if err != nil {
				return err
			}
			var lines []string
			for _, it := range resp.ImagesDeleted {
				if it.Untagged != "" {
					lines = append(lines, "untagged: "+it.Untagged)
				} else {
					lines = append(lines, "deleted: "+it.Deleted)
				}
			}
			printPruned(cmd.OutOrStdout(), "Deleted Images:", lines, resp.SpaceReclaimed)
			return nil
		},
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "Remove all unused images, not just dangling ones")
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Do not prompt for confirmation")
	addList(cmd.Flags(), &filters, "filter", "", `Provide filter values (e.g. "until=<timestamp>")`)
	return cmd
}

func newPullCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "pull [OPTIONS] NAME[:TAG]",
		Short: "Download an image from a registry",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			return c.ImagePull(cmd.Context(), args[0], newProgressPrinter(cmd.OutOrStdout()).show)
		},
	}
}

// eachArg runs fn for every argument, as docker's commands on several objects do: a failure is
// reported and the next one tried, and the errors are joined at the end; a daemon that cannot
// be reached stops at once.
func eachArg(args []string, fn func(string) error) error {
	var errs []string
	for _, a := range args {
		if err := fn(a); err != nil {
			if isConnectError(err) {
				return err
			}
			errs = append(errs, describeError(err))
		}
	}
	return joinErrors(errs)
}
