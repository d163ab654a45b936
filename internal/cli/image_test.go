package cli

import (
	"bytes"
	"testing"
	"time"

	"github.com/cnet-dev/cnet/internal/api"
)

func TestHumanSize(t *testing.T) {
	for _, tt := range []struct {
		n    int64
		want string
	}{
		{0, "0B"}, {999, "999B"}, {1000, "1kB"}, {1234, "1.23kB"}, {4_860_000, "4.86MB"}, {1_250_000_000, "1.25GB"},
	} {
		if got := humanSize(tt.n); got != tt.want {
			t.Errorf("humanSize(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}

// TestWriteImages: docker's table, one row per reference, <none> for an untagged image, newest
// first; -q one ID per image; --format placeholders.
func TestWriteImages(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	list := []api.ImageSummary{
		{ID: "sha256:aaaaaaaaaaaa1111", RepoTags: []string{"busybox:latest", "cnet.test/busybox:1"}, Created: now.Add(-3 * time.Hour).Unix(), Size: 1_234_000},
		{ID: "sha256:bbbbbbbbbbbb2222", Created: now.Add(-2 * time.Minute).Unix(), Size: 999},
	}
	tests := []struct {
		name string
		o    imageListOptions
		want string
	}{
		{"table", imageListOptions{}, "REPOSITORY          TAG       IMAGE ID       CREATED         SIZE\n" +
			"<none>              <none>    bbbbbbbbbbbb   2 minutes ago   999B\n" +
			"busybox             latest    aaaaaaaaaaaa   3 hours ago     1.23MB\n" +
			"cnet.test/busybox   1         aaaaaaaaaaaa   3 hours ago     1.23MB\n"},
		{"quiet", imageListOptions{quiet: true}, "bbbbbbbbbbbb\naaaaaaaaaaaa\n"},
		{"format", imageListOptions{format: "{{.Repository}}:{{.Tag}} {{.ID}}"}, "<none>:<none> bbbbbbbbbbbb\nbusybox:latest aaaaaaaaaaaa\ncnet.test/busybox:1 aaaaaaaaaaaa\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			if err := writeImages(&out, tt.o, append([]api.ImageSummary(nil), list...), now); err != nil {
				t.Fatal(err)
			}
			if out.String() != tt.want {
				t.Errorf("got:\n%s\nwant:\n%s", out.String(), tt.want)
			}
		})
	}
}
