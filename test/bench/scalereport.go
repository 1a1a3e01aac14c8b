package main

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
)

// scaleFigures are the scale scenario's measurements (the issue 14
// table); zero values were not measured.
type scaleFigures struct {
	Webhooks         int     `json:"webhooks"`
	Accounts         int     `json:"accounts"`
	CreateSeconds    float64 `json:"create_seconds"`
	ColdStartSeconds float64 `json:"cold_start_seconds"`

	IdleCPUWebhookd []float64 `json:"idle_cpu_webhookd_percent"` // per replica
	IdleCPUNats     float64   `json:"idle_cpu_nats_percent"`
	IdleCPURedis    float64   `json:"idle_cpu_redis_percent"`
	RSSWebhookdMB   []float64 `json:"rss_webhookd_mb"` // per replica, at the end of idle
	RSSNatsMB       float64   `json:"rss_nats_mb"`
	EmptyRSSMB      []float64 `json:"empty_registry_rss_webhookd_mb"`
	BytesPerWebhook float64   `json:"rss_bytes_per_idle_webhook"`

	Renames           int     `json:"renames"`
	RenameCPUWebhookd float64 `json:"rename_cpu_webhookd_percent"` // both replicas
	RenameCPURedis    float64 `json:"rename_cpu_redis_percent"`

	NewWebhookMs   []float64 `json:"new_webhook_first_delivery_ms"`
	RestartSeconds float64   `json:"restart_all_deliver_seconds"`

	CostSpread costRun `json:"cost_spread"`
	CostOne    costRun `json:"cost_one_account"`
	CostFew    costRun `json:"cost_one_account_per_partition"`

	DeadPartition int       `json:"dead_partition"`
	DeadAlone     []float64 `json:"dead_healthy_alone_events_per_s"`
	DeadBusy      []float64 `json:"dead_healthy_next_to_delivering_events_per_s"`
	DeadWith      []float64 `json:"dead_healthy_next_to_refusing_events_per_s"`

	Load []string `json:"load1_after_each_step"`

	idleUsage map[string]usage
	notes     []string
	lines     []scaleLine
	allMet    *bool
}

// scaleLine is one row of the printed scale table.
type scaleLine struct {
	what, value, target string
	met                 *bool
}

func yes(ok bool) *bool { return &ok }

// judge builds the table's lines and decides each target (issue 14's,
// on this 2-core machine); a line not measured has no verdict.
func (f *scaleFigures) judge() {
	f.lines = nil
	add := func(measured bool, what, value, target string, ok bool) {
		l := scaleLine{what: what, value: value, target: target}
		if !measured {
			l.value = "-"
		} else if target != "" {
			l.met = yes(ok)
		}
		f.lines = append(f.lines, l)
	}
	idle := len(f.IdleCPUWebhookd) == 2
	whIdle := sum(f.IdleCPUWebhookd)
	add(idle, "idle CPU % of a core, webhookd (a + b) / nats-server",
		fmt.Sprintf("%s (%s + %s) / %s", num(whIdle), num(at(f.IdleCPUWebhookd, 0)), num(at(f.IdleCPUWebhookd, 1)), num(f.IdleCPUNats)),
		"≤ 25 / ≤ 25 (webhookd: both replicas together)", whIdle <= 25 && f.IdleCPUNats <= 25)
	add(idle, "RSS MB, webhookd a / b / nats-server",
		fmt.Sprintf("%s / %s / %s", mbs(at(f.RSSWebhookdMB, 0)), mbs(at(f.RSSWebhookdMB, 1)), mbs(f.RSSNatsMB)), "", true)
	add(idle && len(f.EmptyRSSMB) == 2, "memory per idle webhook, webhookd (RSS − empty registry, mean of a and b)",
		fmt.Sprintf("%.0f B (empty %s / %s MB)", f.BytesPerWebhook, mbs(at(f.EmptyRSSMB, 0)), mbs(at(f.EmptyRSSMB, 1))),
		"≤ 2 KB", f.BytesPerWebhook <= 2048)
	add(f.Renames > 0, "5 renames/s for the window: CPU % webhookd (a + b) / Redis",
		fmt.Sprintf("%s / %s (%d renames)", num(f.RenameCPUWebhookd), num(f.RenameCPURedis), f.Renames),
		"≤ idle + 5 (O(1) per change; bench's bar)", f.RenameCPUWebhookd <= whIdle+5)
	add(len(f.NewWebhookMs) > 0, "a new webhook's first delivery (create → received), median / max of 10",
		fmt.Sprintf("%.0f / %.0f ms", median(f.NewWebhookMs), slices.Max(append([]float64{0}, f.NewWebhookMs...))),
		"≤ 2 s (max)", slices.Max(append([]float64{0}, f.NewWebhookMs...)) <= 2000)
	add(f.RestartSeconds > 0, "restart of both replicas until a sample of 1,000 webhooks delivered",
		fmt.Sprintf("%.1f s (first start %.1f s)", f.RestartSeconds, f.ColdStartSeconds), "≤ 10 s", f.RestartSeconds <= 10)
	sp, one := f.CostSpread, f.CostOne
	costOK := sp.Events > 0 && one.Events > 0
	ratio := 0.0
	if costOK {
		ratio = sp.MicrosPerEv / one.MicrosPerEv
	}
	add(costOK, fmt.Sprintf("per event over %s subjects vs one account: events/s; CPU µs/event (webhookd + nats)", count(sp.Subjects)),
		fmt.Sprintf("%s vs %s ev/s; %.1f vs %.1f µs (ratio %.2f); redelivered %d / %d",
			rate(sp.EventsPerSec), rate(one.EventsPerSec), sp.MicrosPerEv, one.MicrosPerEv, ratio, sp.Redelivered, one.Redelivered),
		"ratio ≤ 1.5 (independent of spread)", ratio <= 1.5)
	if few := f.CostFew; costOK && few.Events > 0 {
		add(true, fmt.Sprintf("  the same over %d subjects, one account per partition (spread vs this: many subjects; this vs one account: many partitions)", few.Subjects),
			fmt.Sprintf("%s ev/s; %.1f µs (spread / this %.2f, this / one account %.2f); redelivered %d",
				rate(few.EventsPerSec), few.MicrosPerEv, sp.MicrosPerEv/few.MicrosPerEv, few.MicrosPerEv/one.MicrosPerEv, few.Redelivered),
			"", false)
	}
	deadOK := len(f.DeadAlone) > 0 && len(f.DeadWith) > 0 && len(f.DeadBusy) > 0
	slow, slowAlone := 0.0, 0.0
	if deadOK {
		slow = 1 - mean(f.DeadWith)/mean(f.DeadBusy)
		slowAlone = 1 - mean(f.DeadWith)/mean(f.DeadAlone)
	}
	add(deadOK, fmt.Sprintf("dead neighbour, partition %d: healthy ev/s alone / next to a delivering neighbour / next to a refusing one", f.DeadPartition),
		fmt.Sprintf("%s / %s / %s (refusing vs delivering %.0f%% slower, vs alone %.0f%%)",
			rates(f.DeadAlone), rates(f.DeadBusy), rates(f.DeadWith), 100*slow, 100*slowAlone),
		"refusing ≤ 20% slower than delivering", slow <= 0.20)
	all := true
	any := false
	for _, l := range f.lines {
		if l.met != nil {
			any = true
			all = all && *l.met
		}
	}
	if any {
		f.allMet = yes(all)
	}
}

// printScale writes the scale scenario's table.
func printScale(w io.Writer, rows []*result) {
	for _, r := range rows {
		f := r.Scale
		if f == nil {
			continue
		}
		if f.lines == nil {
			f.judge()
		}
		fmt.Fprintf(w, "\nscale: %s\n\n", r.What)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "measure\t%s webhooks\ttarget\tmet\t\n", count(f.Webhooks))
		for _, l := range f.lines {
			met := "-"
			if l.met != nil {
				met = map[bool]string{true: "yes", false: "NO"}[*l.met]
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t\n", l.what, l.value, l.target, met)
		}
		tw.Flush()
		fmt.Fprintf(w, "  created in %.1f s; load average (1 min) after each step: %s\n", f.CreateSeconds, strings.Join(f.Load, ", "))
	}
}

func sum(v []float64) float64 {
	t := 0.0
	for _, x := range v {
		t += x
	}
	return t
}

func mean(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	return sum(v) / float64(len(v))
}

func at(v []float64, i int) float64 {
	if i < len(v) {
		return v[i]
	}
	return 0
}

func rates(v []float64) string {
	var s []string
	for _, x := range v {
		s = append(s, rate(x))
	}
	return strings.Join(s, ", ")
}

// load1 is the machine's 1-minute load average now.
func load1() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	l, _, _ := strings.Cut(string(b), " ")
	return l
}
