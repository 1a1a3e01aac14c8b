package dispatcher

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/rs/zerolog"

	"github.com/webhookd/webhookd/subscriptions"
)

// ixScale is the target: 100,000 webhooks over 10,000 accounts,
// two topics each (out of five).
const (
	ixWebhooks = 100000
	ixAccounts = 10000
)

var ixTopics = []string{ixSMS, ixOpen, ixClick, "event:klaviyo.bounced_email", "event:klaviyo.opened_push"}

// ixFabricate builds n webhooks as the decoder returns them: every
// string its own allocation, Topics with spare capacity, a description.
func ixFabricate(n, accounts int) []subscriptions.Webhook {
	r := rand.New(rand.NewPCG(1, 2))
	now := time.Now().UTC()
	ws := make([]subscriptions.Webhook, n)
	for i := range ws {
		t1 := r.IntN(len(ixTopics))
		t2 := (t1 + 1 + r.IntN(len(ixTopics)-1)) % len(ixTopics)
		topics := make([]string, 0, 4)
		topics = append(topics, strings.Clone(ixTopics[min(t1, t2)]), strings.Clone(ixTopics[max(t1, t2)]))
		desc := fmt.Sprintf("webhook number %d for the data warehouse", i)
		ws[i] = subscriptions.Webhook{
			ID:          uuid.NewString(),
			AccountID:   fmt.Sprintf("A%05d", i%accounts),
			Name:        fmt.Sprintf("warehouse sync %d", i),
			Description: &desc,
			EndpointURL: fmt.Sprintf("https://hooks.customer-%05d.example.com/klaviyo/webhook/%d", i%accounts, i),
			Secret:      fmt.Sprintf("whsec_%040d", i),
			Enabled:     i%50 != 0,
			Topics:      topics,
			CreatedAt:   now, UpdatedAt: now, ActiveSince: now,
		}
	}
	return ws
}

// ixHeap returns the live heap after a full collection.
func ixHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// ixLoad builds an index holding ws, as a full load does.
func ixLoad(ws []subscriptions.Webhook) *index {
	x := newIndex(nil, "default", zerolog.Nop())
	d := newIndexData(len(ws))
	for _, w := range ws {
		d.put(w)
	}
	x.data = d
	return x
}

// TestIndexMemory loads 100,000 webhooks and checks the heap they cost
// with both lookups against the 2 KB per idle webhook (the
// figure is logged: go test -v -run TestIndexMemory).
func TestIndexMemory(t *testing.T) {
	before := ixHeap()
	ws := ixFabricate(ixWebhooks, ixAccounts)
	input := ixHeap() - before
	x := ixLoad(ws)
	ws = nil //nolint:ineffassign // frees the decoded input before the heap is read
	per := float64(ixHeap()-before) / ixWebhooks
	t.Logf("index of %d webhooks: %.0f B per webhook (the decoded input alone: %.0f B)", x.Len(), per, float64(input)/ixWebhooks)
	if per > 2048 {
		t.Errorf("index: %.0f B per webhook, want <= 2048", per)
	}
	runtime.KeepAlive(x)
}

// BenchmarkIndexLoad measures a full load of 100,000 webhooks from the
// decoded list (ns/op) and the heap the index then holds (B/webhook,
// counting the decoded strings it keeps, not the ones it drops).
func BenchmarkIndexLoad(b *testing.B) {
	var per float64
	for b.Loop() {
		b.StopTimer()
		before := ixHeap()
		ws := ixFabricate(ixWebhooks, ixAccounts)
		b.StartTimer()
		x := ixLoad(ws)
		b.StopTimer()
		ws = nil //nolint:ineffassign // frees the decoded input before the heap is read
		per = float64(ixHeap()-before) / ixWebhooks
		runtime.KeepAlive(x)
		b.StartTimer()
	}
	b.ReportMetric(per, "B/webhook")
}

// BenchmarkIndexTargets measures the per-event lookup at 100,000
// webhooks, from one goroutine and from all of them at once.
func BenchmarkIndexTargets(b *testing.B) {
	x := ixLoad(ixFabricate(ixWebhooks, ixAccounts))
	keys := make([]targetKey, 4096)
	for i := range keys {
		keys[i] = targetKey{fmt.Sprintf("A%05d", i*7%ixAccounts), ixTopics[i%len(ixTopics)]}
	}
	b.Run("serial", func(b *testing.B) {
		i, hits := 0, 0
		for b.Loop() {
			k := keys[i%len(keys)]
			hits += len(x.Targets(k.account, k.topic))
			i++
		}
		b.ReportMetric(float64(hits)/float64(b.N), "targets/op")
	})
	b.Run("parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				k := keys[i%len(keys)]
				_ = x.Targets(k.account, k.topic)
				i++
			}
		})
	})
}

// BenchmarkIndexApply measures one registry change at 100,000 webhooks
// (what following the feed costs per entry, apart from the Lookup): it
// must not depend on the number of webhooks.
func BenchmarkIndexApply(b *testing.B) {
	ws := ixFabricate(ixWebhooks, ixAccounts)
	x := ixLoad(ws)
	i := 0
	for b.Loop() {
		w := ws[i%len(ws)]
		w.Name = "renamed"
		x.apply(w.ID, &w)
		i++
	}
}

// TestIndexData checks the lookups and the interning of a generation
// directly: who Targets returns, in which order, and that removing every
// webhook leaves nothing behind.
func TestIndexData(t *testing.T) {
	ws := []subscriptions.Webhook{
		{ID: "c", AccountID: "a", Name: "c", Enabled: true, Topics: []string{ixOpen, ixSMS}},
		{ID: "b", AccountID: strings.Clone("a"), Name: "b", Enabled: true, Topics: []string{strings.Clone(ixSMS)}},
		{ID: "off", AccountID: "a", Name: "off", Enabled: false, Topics: []string{ixSMS}},
		{ID: "d", AccountID: "default", Name: "d", Enabled: true, Topics: []string{ixSMS}},
		{ID: "e", AccountID: "other", Name: "e", Enabled: true, Topics: []string{ixClick}},
	}
	x := ixLoad(ws)
	tests := []struct {
		account, topic string
		want           []string
	}{
		{"a", ixSMS, []string{"b", "c"}}, // by id; "off" is disabled
		{"a", ixOpen, []string{"c"}},
		{"a", ixClick, nil},
		{"", ixSMS, []string{"d"}}, // "" is the default account
		{"default", ixSMS, []string{"d"}},
		{"other", ixSMS, nil},
		{"nobody", ixSMS, nil},
	}
	for _, tt := range tests {
		if got := ixTargets(x, tt.account, tt.topic); !cmp.Equal(got, tt.want) {
			t.Errorf("Targets(%q, %q) = %v, want %v", tt.account, tt.topic, got, tt.want)
		}
	}
	if w, ok := x.Get("off"); !ok || w.Enabled {
		t.Errorf("Get(off) = %v, %v, want the disabled webhook", w, ok)
	}
	b, _ := x.Get("b")
	c, _ := x.Get("c")
	if unsafe.StringData(b.AccountID) != unsafe.StringData(c.AccountID) ||
		unsafe.StringData(b.Topics[0]) != unsafe.StringData(c.Topics[1]) {
		t.Error("equal account ids and topics of two webhooks are separate copies, want one interned copy")
	}
	if got, want := x.data.strs["a"].n, 3; got != want {
		t.Errorf("references to account a = %d, want %d", got, want)
	}

	// A slice Targets returned is not modified by later changes.
	held := x.Targets("a", ixSMS)
	x.apply("b", nil)
	if got := ixNames(held); !cmp.Equal(got, []string{"b", "c"}) {
		t.Errorf("a Targets slice held across a delete = %v, want [b c]", got)
	}
	for _, w := range ws {
		x.apply(w.ID, nil)
	}
	if x.Len() != 0 || len(x.data.targets) != 0 || len(x.data.strs) != 0 {
		t.Errorf("after removing every webhook: Len %d, %d target keys, %d interned strings, want 0, 0, 0",
			x.Len(), len(x.data.targets), len(x.data.strs))
	}
}

func ixNames(ws []*subscriptions.Webhook) []string {
	var out []string
	for _, w := range ws {
		out = append(out, w.Name)
	}
	return out
}
