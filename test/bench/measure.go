package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat.
// It is 100 on every Linux architecture Go supports (the kernel exports a
// fixed USER_HZ whatever its internal HZ); reading it would need cgo.
const clockTicks = 100

// cpuTicks returns utime+stime of pid, in clock ticks.
func cpuTicks(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may contain spaces and parentheses:
	// fields are counted after its closing parenthesis.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	u, err1 := strconv.ParseUint(f[11], 10, 64)
	s, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: bad utime/stime", pid)
	}
	return u + s, nil
}

// memKB returns the resident set size and its high-water mark of pid, in
// KiB (VmRSS and VmHWM of /proc/<pid>/status).
func memKB(pid int) (rss, hwm uint64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		var dst *uint64
		switch k {
		case "VmRSS":
			dst = &rss
		case "VmHWM":
			dst = &hwm
		default:
			continue
		}
		*dst, _ = strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
	}
	return rss, hwm, nil
}

// resetHWM sets VmHWM back to the current RSS (Linux ≥ 4.0), so a
// long-lived process's peak can be measured per phase. Failure only
// means the sampled peak is used alone.
func resetHWM(pid int) {
	_ = os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
}

// machineTicks returns the busy clock ticks of all CPUs together (the
// first line of /proc/stat: everything but idle and iowait).
func machineTicks() uint64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	var busy uint64
	for i, v := range f[1:] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		if i >= 8 { // guest time is already in user
			break
		}
		n, _ := strconv.ParseUint(v, 10, 64)
		busy += n
	}
	return busy
}

// usage is what a meter measured for one process.
type usage struct {
	CPUPercent float64 `json:"cpu_percent"` // of one core: 100 = one core busy
	PeakRSSMB  float64 `json:"peak_rss_mb"`
	EndRSSMB   float64 `json:"end_rss_mb"`
}

// meter measures CPU and peak memory of a set of processes over one
// window: CPU is the utime+stime delta divided by the wall time, the peak
// is the larger of VmHWM (reset at the start) and a 100 ms RSS sample.
type meter struct {
	start  time.Time
	busy0  uint64 // machineTicks at start
	pids   map[string]int
	ticks  map[string]uint64
	stopc  chan struct{}
	done   chan struct{}
	mu     sync.Mutex
	peakKB map[string]uint64
	// samples is the RSS series of the process named by trace (for the
	// memory-flat check), one per sample tick.
	trace   string
	samples []rssSample
}

type rssSample struct {
	At    time.Duration `json:"-"`
	AtS   float64       `json:"t_s"`
	RSSMB float64       `json:"rss_mb"`
	Note  string        `json:"note,omitempty"`
}

// startMeter starts measuring pids (name → pid). trace, if not empty,
// names the process whose RSS series is kept.
func startMeter(pids map[string]int, trace string) *meter {
	m := &meter{
		start: time.Now(), pids: pids, ticks: map[string]uint64{}, peakKB: map[string]uint64{},
		stopc: make(chan struct{}), done: make(chan struct{}), trace: trace,
	}
	for name, pid := range pids {
		resetHWM(pid)
		m.ticks[name], _ = cpuTicks(pid)
	}
	m.busy0 = machineTicks()
	m.sample()
	go func() {
		defer close(m.done)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-m.stopc:
				return
			case <-t.C:
				m.sample()
			}
		}
	}()
	return m
}

func (m *meter) sample() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for name, pid := range m.pids {
		rss, _, err := memKB(pid)
		if err != nil {
			continue
		}
		m.peakKB[name] = max(m.peakKB[name], rss)
		if name == m.trace {
			at := time.Since(m.start)
			m.samples = append(m.samples, rssSample{At: at, AtS: at.Seconds(), RSSMB: mb(rss)})
		}
	}
}

// mark adds a note to the trace at the current time.
func (m *meter) mark(note string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if pid, ok := m.pids[m.trace]; ok {
		rss, _, _ := memKB(pid)
		at := time.Since(m.start)
		m.samples = append(m.samples, rssSample{At: at, AtS: at.Seconds(), RSSMB: mb(rss), Note: note})
	}
}

// stop ends the window and returns each process's usage.
func (m *meter) stop() map[string]usage {
	wall := time.Since(m.start).Seconds()
	end := map[string]uint64{}
	for name, pid := range m.pids {
		end[name], _ = cpuTicks(pid)
	}
	busy := machineTicks()
	close(m.stopc)
	<-m.done
	m.sample()
	out := map[string]usage{}
	m.mu.Lock()
	defer m.mu.Unlock()
	for name, pid := range m.pids {
		rss, hwm, _ := memKB(pid)
		var u usage
		if wall > 0 && end[name] >= m.ticks[name] {
			u.CPUPercent = float64(end[name]-m.ticks[name]) / clockTicks / wall * 100
		}
		u.PeakRSSMB = mb(max(hwm, m.peakKB[name]))
		u.EndRSSMB = mb(rss)
		out[name] = u
	}
	// "machine" is every process on the host, the bench's own and other
	// tenants' included: how much of the 2 cores the run really had.
	if wall > 0 && busy >= m.busy0 {
		out["machine"] = usage{CPUPercent: float64(busy-m.busy0) / clockTicks / wall * 100}
	}
	return out
}

// series returns the traced RSS samples.
func (m *meter) series() []rssSample {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]rssSample(nil), m.samples...)
}

func mb(kb uint64) float64 { return float64(kb) / 1024 }
