package api

import "testing"

func TestProgressBar(t *testing.T) {
	for _, tt := range []struct {
		cur, total int64
		want       string
	}{
		{0, 2_820_000, "[>                                                  ]       0B/2.82MB"},
		{1_410_000, 2_820_000, "[=========================>                         ]   1.41MB/2.82MB"},
		{2_820_000, 2_820_000, "[==================================================>]   2.82MB/2.82MB"},
		{3_000_000, 2_820_000, "[==================================================>]   2.82MB/2.82MB"},
		{1234, 0, "1.23kB"},
	} {
		if got := ProgressBar(tt.cur, tt.total, 50); got != tt.want {
			t.Errorf("ProgressBar(%d, %d) = %q, want %q", tt.cur, tt.total, got, tt.want)
		}
	}
}
