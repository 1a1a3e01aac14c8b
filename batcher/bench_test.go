package batcher

import (
	"fmt"
	"testing"
)

// BenchmarkParse measures Parse on realistic Get Event payloads; it runs on
// every event the dispatcher delivers.
func BenchmarkParse(b *testing.B) {
	for _, size := range []int{1 << 10, 16 << 10} {
		body := getEvent("4L3cwQae2TX", size)
		b.Run(fmt.Sprintf("%dB", len(body)), func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if _, err := Parse(body, ""); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
