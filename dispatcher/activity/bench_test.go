package activity

import (
	"context"
	"fmt"
	"io/fs"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/webhookd/webhookd/test/harness"
)

// The figures quoted in the README ("Attempt log") come from these:
//
//	go test -run '^$' -bench . -benchtime 20x ./dispatcher/activity/

// realistic is a one-event attempt as the courier records it.
func realistic(account, webhook string, i int) Attempt {
	a := attempt(account, webhook, i)
	a.ExternalIDs = []string{fmt.Sprintf("01HF7AYTK76RHR4F17G%07d", i)}
	a.Bytes = 1100
	if a.Outcome == Failed {
		a.ResponseExcerpt = `{"error":"internal server error","request_id":"5f1c2a"}`
	}
	return a
}

// filled is a log of total attempts, one in every `every` of them for
// webhook "hot", written through a Writer; it is built once per process.
type filled struct {
	r    *Reader
	dir  string
	js   jetstream.JetStream
	hot  int
	wrAt time.Duration
}

func filledLog(b *testing.B) *filled {
	var fill *filled
	func() {
		const total, every = 1_000_000, 10
		dir := b.TempDir()
		js, err := jetstream.New(harness.Connect(b, harness.NATSWithDir(b, dir)))
		if err != nil {
			b.Fatal(err)
		}
		cfg := Config{MaxBytes: 2 << 30}
		if err := Ensure(context.Background(), js, cfg); err != nil {
			b.Fatal(err)
		}
		w := NewWriter(Config{Buffer: 1 << 16}, js, zerolog.Nop())
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- w.Run(ctx) }()
		start := time.Now()
		for i := range total {
			hook := fmt.Sprintf("cold%03d", i%997)
			if i%every == 0 {
				hook = "hot"
			}
			for w.Buffered() > 1<<15 {
				time.Sleep(time.Millisecond)
			}
			w.Record(realistic("acct", hook, i))
		}
		for w.Stats().Written.Load()+w.Stats().Dropped.Load() < total {
			time.Sleep(10 * time.Millisecond)
		}
		wrote := time.Since(start)
		cancel()
		<-done
		fill = &filled{r: NewReader(cfg, js), dir: dir, js: js, hot: total / every, wrAt: wrote}
	}()
	return fill
}

func diskBytes(b *testing.B, dir string) int64 {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err == nil {
			n += info.Size()
		}
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	return n
}

// BenchmarkLog fills a log with 1M one-event attempts (one in ten of
// webhook "hot") once, then measures it.
func BenchmarkLog(b *testing.B) {
	f := filledLog(b)
	b.Run("disk", func(b *testing.B) { benchDisk(b, f) })
	benchPages(b, f)
}

// benchDisk reports the writer's throughput and the disk used per
// million one-event attempts (S2-compressed file store).
func benchDisk(b *testing.B, f *filled) {
	st, err := f.js.Stream(context.Background(), DefaultStream)
	if err != nil {
		b.Fatal(err)
	}
	info := st.CachedInfo()
	for range b.N {
	}
	disk := diskBytes(b, f.dir)
	b.ReportMetric(float64(disk)/float64(info.State.Msgs)*1e6/(1<<20), "disk-MiB/1M-attempts")
	b.ReportMetric(float64(info.State.Bytes)/float64(info.State.Msgs), "stream-B/attempt")
	b.ReportMetric(float64(info.State.Msgs)/f.wrAt.Seconds(), "written/s")
}

// benchPages reads pages of the hot webhook (100k of the 1M attempts)
// and of a cold one (about 1,000), with and without filters.
func benchPages(b *testing.B, f *filled) {
	ctx := context.Background()
	failed := func(a *Attempt) bool { return a.Outcome == Failed }
	cases := []struct {
		name, hook string
		q          Query
	}{
		{"hot/newest-20", "hot", Query{Limit: 20}},
		{"hot/newest-100", "hot", Query{Limit: 100}},
		{"hot/deep-cursor-20", "hot", Query{Limit: 20, Before: 200_000}},
		{"hot/failed-100", "hot", Query{Limit: 100, Match: failed}},
		{"hot/external-id-miss", "hot", Query{Limit: 20, ExternalID: "nope", Match: func(*Attempt) bool { return false }}},
		{"cold/newest-20", "cold005", Query{Limit: 20}},
		{"cold/newest-100", "cold005", Query{Limit: 100}},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			var scanned int
			for b.Loop() {
				p, err := f.r.List(ctx, "acct", tc.hook, tc.q)
				if err != nil {
					b.Fatal(err)
				}
				scanned += p.Scanned
			}
			b.ReportMetric(float64(scanned)/float64(b.N), "scanned/op")
		})
	}
	b.Run("get-by-id", func(b *testing.B) {
		p, err := f.r.List(ctx, "acct", "hot", Query{Limit: 1, Before: 500_000})
		if err != nil || len(p.Entries) != 1 {
			b.Fatal(err)
		}
		id := p.Entries[0].ID
		for b.Loop() {
			if _, err := f.r.Get(ctx, "acct", "hot", id); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkRecord is the hot path's cost: one Record into a buffer that
// is emptied concurrently.
func BenchmarkRecord(b *testing.B) {
	w := NewWriter(Config{}, nil, zerolog.Nop())
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-w.ch:
			case <-stop:
				return
			}
		}
	}()
	a := realistic("acct", "wh", 1)
	b.ReportAllocs()
	for b.Loop() {
		w.Record(a)
	}
	close(stop)
}

// BenchmarkEncode is the writer's encoding of one attempt.
func BenchmarkEncode(b *testing.B) {
	a := realistic("acct", "wh", 3)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := encode(&a); err != nil {
			b.Fatal(err)
		}
	}
}
