package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// result is one table row, and the same figures in the JSON file.
type result struct {
	Scenario       string  `json:"scenario"`
	What           string  `json:"what"`
	Published      int64   `json:"expected_deliveries,omitempty"` // unique (webhook, event) pairs that must arrive
	Events         int64   `json:"delivered_unique"`
	Seconds        float64 `json:"seconds"`
	EventsPerSec   float64 `json:"events_per_s"`
	RequestsPerSec float64 `json:"requests_per_s"`

	HasLatency bool    `json:"-"`
	P50        float64 `json:"latency_p50_ms,omitempty"`
	P99        float64 `json:"latency_p99_ms,omitempty"`
	Max        float64 `json:"latency_max_ms,omitempty"`

	// Usage is per process: webhookd, nats, redis, sink0, bench (the
	// bench's own process), client (the ceiling rows' JetStream client:
	// the bench too) and machine (every process on the host).
	Usage     map[string]usage `json:"usage"`
	ClientCPU bool             `json:"client_cpu,omitempty"`
	VsCeiling float64          `json:"vs_ceiling,omitempty"`
	Ceiling   float64          `json:"ceiling_events_per_s,omitempty"` // measured on this row's own backlog

	LostNA        bool  `json:"-"` // nothing is meant to arrive
	Lost          int64 `json:"lost"`
	Duplicates    int64 `json:"duplicates"`
	BadSignatures int64 `json:"bad_signatures"`
	Mismatches    int64 `json:"mismatches"`
	Malformed     int64 `json:"malformed"`
	PeakInFlight  int64 `json:"peak_in_flight"`
	MaxBatch      int   `json:"max_batch_events"`

	Noisy  bool           `json:"noisy,omitempty"` // other tenants used > noisyCPU % of a core
	Target string         `json:"target,omitempty"`
	Met    *bool          `json:"target_met,omitempty"`
	Notes  []string       `json:"notes,omitempty"`
	Extra  map[string]any `json:"extra,omitempty"`
	Error  string         `json:"error,omitempty"`
	// Scale is the scale scenario's figures, printed as a table of their
	// own (printScale) rather than as a row.
	Scale *scaleFigures `json:"scale,omitempty"`
}

func (r *result) setMet(ok bool) { r.Met = &ok }

// noisyCPU is how much of a core other tenants may use during a row
// before it is flagged: beyond it, the row measured the neighbours too.
const noisyCPU = 30

// otherCPU is the CPU, in % of one core, that processes other than the
// bench and its children used during the row's window.
func (r *result) otherCPU() (float64, bool) {
	h, ok := r.Usage["machine"]
	if !ok {
		return 0, false
	}
	v := h.CPUPercent
	for name, u := range r.Usage {
		if name != "machine" {
			v -= u.CPUPercent
		}
	}
	return max(0, v), true
}

// flagNoise adds a note to rows measured while other tenants were busy.
func (r *result) flagNoise() {
	if v, ok := r.otherCPU(); ok && v > noisyCPU {
		r.Noisy = true
		r.Notes = append(r.Notes, fmt.Sprintf("NOISY: other processes on the machine used %.0f%% of a core meanwhile", v))
	}
}

// fromSink copies the sink's correctness counters; lost events are the
// expected deliveries that never arrived.
func (r *result) fromSink(st sinkStats) {
	r.Duplicates, r.BadSignatures, r.Mismatches, r.Malformed = st.Duplicates, st.BadSignatures, st.Mismatches, st.Malformed
	r.PeakInFlight, r.MaxBatch = st.PeakInFlight, st.MaxBatchEvents
	if r.Published > 0 && !r.LostNA {
		r.Lost = max(0, r.Published-st.UniqueEvents)
	}
}

// failed reports a correctness failure: a lost event or a request the
// sink could not verify.
func (r *result) failed() bool {
	return r.Error != "" || r.Lost > 0 || r.BadSignatures > 0 || r.Mismatches > 0 || r.Malformed > 0
}

// printTable writes the results as one aligned table.
func printTable(w io.Writer, rows []*result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tevents/s\treq/s\tp50 ms\tp99 ms\tmax ms\tCPU wh %\tCPU nats %\tCPU sink %\tCPU other %\tRSS wh MB\tRSS nats MB\t× ceiling\tlost\tbad sig\ttarget met\t")
	for _, r := range rows {
		if r.Scale != nil && r.Error == "" {
			continue
		}
		wh, nats, sink := r.Usage["webhookd"], r.Usage["nats"], r.Usage["sink0"]
		whCPU, whRSS := num(wh.CPUPercent), mbs(wh.PeakRSSMB)
		if r.ClientCPU {
			whCPU, whRSS = num(r.Usage["client"].CPUPercent)+"*", "-"
		}
		lat := [3]string{"-", "-", "-"}
		if r.HasLatency {
			lat = [3]string{num(r.P50), num(r.P99), num(r.Max)}
		}
		lost, bad := strconv.FormatInt(r.Lost, 10), strconv.FormatInt(r.BadSignatures+r.Mismatches+r.Malformed, 10)
		if r.LostNA {
			lost = "-"
		}
		met := "-"
		if r.Met != nil {
			met = map[bool]string{true: "yes", false: "NO"}[*r.Met]
		}
		if r.Error != "" {
			met = "ERROR"
		}
		vs := "-"
		if r.VsCeiling > 0 {
			vs = fmt.Sprintf("%.2f", r.VsCeiling)
		}
		sinkCPU := "-"
		if _, ok := r.Usage["sink0"]; ok {
			sinkCPU = num(sink.CPUPercent)
		}
		other := "-"
		if v, ok := r.otherCPU(); ok {
			other = num(v)
		}
		name := r.Scenario
		if r.Noisy {
			name += " ~"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n",
			name, rate(r.EventsPerSec), rate(r.RequestsPerSec), lat[0], lat[1], lat[2],
			whCPU, num(nats.CPUPercent), sinkCPU, other, whRSS, mbs(nats.PeakRSSMB), vs, lost, bad, met)
	}
	tw.Flush()
}

// printNotes lists what each row measured, its target and notes.
func printNotes(w io.Writer, rows []*result) {
	for _, r := range rows {
		fmt.Fprintf(w, "  %-22s %s", r.Scenario, r.What)
		if r.Target != "" {
			fmt.Fprintf(w, "; target: %s", r.Target)
		}
		fmt.Fprintln(w)
		for _, n := range r.Notes {
			fmt.Fprintf(w, "  %-22s   %s\n", "", n)
		}
		if r.Duplicates > 0 {
			fmt.Fprintf(w, "  %-22s   %d duplicate deliveries\n", "", r.Duplicates)
		}
		if r.Error != "" {
			fmt.Fprintf(w, "  %-22s   ERROR: %s\n", "", r.Error)
		}
	}
	fmt.Fprintln(w, "  CPU columns are % of one core over the measured window (the machine has", 100*runtime.NumCPU(), "%); CPU other is")
	fmt.Fprintln(w, "  what processes outside the bench used meanwhile; rows above", noisyCPU, "% are flagged NOISY (~ after the name).")
	fmt.Fprintln(w, "  × ceiling compares with raw JetStream fetch+ack of the same backlog, measured just before the drain.")
	fmt.Fprintln(w, "  * ceiling rows: the CPU column is the bench's own JetStream client, not webhookd")
}

func rate(v float64) string {
	switch {
	case v == 0:
		return "-"
	case v >= 10_000:
		return fmt.Sprintf("%.0fk", v/1000)
	case v >= 1000:
		return fmt.Sprintf("%.1fk", v/1000)
	}
	return fmt.Sprintf("%.0f", v)
}

// num formats a percentage or a latency: one decimal below 10.
func num(v float64) string {
	if v < 10 {
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.0f", v)
}

func mbs(v float64) string {
	if v == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f", v)
}

// count formats n as 1M, 100k or 5000.
func count(n int) string {
	switch {
	case n >= 1_000_000 && n%1_000_000 == 0:
		return strconv.Itoa(n/1_000_000) + "M"
	case n >= 1000 && n%1000 == 0:
		return strconv.Itoa(n/1000) + "k"
	}
	return strconv.Itoa(n)
}

// machine describes where the run happened.
type machine struct {
	CPUs      int    `json:"cpus"`
	CPUModel  string `json:"cpu_model"`
	MemoryMB  int    `json:"memory_mb"`
	Kernel    string `json:"kernel"`
	GoVersion string `json:"go_version"`
	Load1     string `json:"load1_at_start"`
}

func describeMachine() machine {
	m := machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int
		if _, err := fmt.Sscanf(string(b), "MemTotal: %d kB", &kb); err == nil {
			m.MemoryMB = kb / 1024
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		m.Load1, _, _ = strings.Cut(string(b), " ")
	}
	return m
}

func (m machine) String() string {
	return fmt.Sprintf("%d CPUs (%s), %d MB RAM, Linux %s, %s, load %s at start", m.CPUs, m.CPUModel, m.MemoryMB, m.Kernel, m.GoVersion, m.Load1)
}

// report is the JSON file.
type report struct {
	Started  time.Time      `json:"started"`
	Seconds  float64        `json:"seconds"`
	Command  string         `json:"command"`
	Preset   string         `json:"preset"`
	Config   map[string]any `json:"config"`
	Machine  machine        `json:"machine"`
	Ceiling  float64        `json:"ceiling_events_per_s,omitempty"`
	Results  []*result      `json:"results"`
	Failures []string       `json:"failures,omitempty"`
}

// writeJSON writes rep to dir/<timestamp>.json and returns the path.
func writeJSON(dir string, rep report) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(dir, rep.Started.UTC().Format("20060102T150405Z")+".json")
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return "", err
	}
	return path, os.WriteFile(path, append(b, '\n'), 0o644)
}
