package api

import (
	"fmt"
	"strings"
)

// HumanSize is go-units' HumanSizeWithPrecision(size, 3), which docker uses for sizes: decimal
// units.
func HumanSize(n int64) string {
	units := []string{"B", "kB", "MB", "GB", "TB", "PB"}
	f, i := float64(n), 0
	for f >= 1000 && i < len(units)-1 {
		f /= 1000
		i++
	}
	return fmt.Sprintf("%.3g%s", f, units[i])
}

// ProgressBar draws a download as Docker does: "[=====>      ]  1.2MB/3.4MB", with width
// columns of "=" when done.
func ProgressBar(current, total int64, width int) string {
	if total <= 0 {
		return HumanSize(current)
	}
	current = min(max(current, 0), total)
	done := int(int64(width) * current / total)
	return fmt.Sprintf("[%s>%s] %8s/%s", strings.Repeat("=", done), strings.Repeat(" ", width-done),
		HumanSize(current), HumanSize(total))
}
