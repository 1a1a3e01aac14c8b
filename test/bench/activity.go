package main

import (
	"context"
	"fmt"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
)

// activityStream is webhookd's attempt log (dispatcher/activity).
const activityStream = "WEBHOOKD_ACTIVITY"

// runDrainActivity is issue 12's cost check: the drain with the attempt
// log off and on, once with the default batch (1,000 events a request)
// and once with 10-event batches (a hundred times more attempts per
// event). As in the dead-neighbour scenario the phases alternate in one
// env — off, on, on, off — so a machine whose load drifts weighs on both
// sides alike; each side reports its mean. The row with the log on
// carries the ratio (target: at most 5 % slower), the CPU webhookd and
// nats-server spent per 100k events on each side (which neighbours
// disturb less than throughput), and the log's disk use per million
// attempts, read from the nats-server's store.
func (b *bench) runDrainActivity(ctx context.Context) ([]*result, error) {
	var rows []*result
	for _, batch := range []int{0, 10} {
		off, on, disk, err := b.drainLogPhases(ctx, batch)
		if err != nil {
			return rows, err
		}
		what := "default batch"
		if batch > 0 {
			what = strconv.Itoa(batch) + "-event batches"
		}
		n := count(b.cfg.drainEvents)
		offRow := b.backlogRow("drain, log off", fmt.Sprintf("%s-event backlog, 1 webhook, %s, attempt log off, mean of %d", n, what, len(off)), meanBacklog(off))
		onRow := b.backlogRow("drain, log on", fmt.Sprintf("%s-event backlog, 1 webhook, %s, attempt log on, mean of %d", n, what, len(on)), meanBacklog(on))
		ratio := onRow.EventsPerSec / offRow.EventsPerSec
		cpuOff, cpuOn := cpuPer100k(off), cpuPer100k(on)
		var ro, rn []string
		for i := range off {
			ro = append(ro, rate(float64(off[i].Want)/off[i].Seconds))
			rn = append(rn, rate(float64(on[i].Want)/on[i].Seconds))
		}
		onRow.Target = "≤ 5% slower than the log off"
		onRow.setMet(ratio >= 0.95)
		onRow.Extra = map[string]any{"log_on_off_ratio": ratio, "cpu_s_per_100k_off": cpuOff, "cpu_s_per_100k_on": cpuOn,
			"attempts": disk.msgs, "log_disk_bytes": disk.bytes, "log_disk_mib_per_million_attempts": disk.perMillion(),
			"events_per_attempt": disk.eventsPerAttempt(b.cfg.drainEvents * len(on))}
		onRow.Notes = append(onRow.Notes,
			fmt.Sprintf("log off %s ev/s, on %s ev/s: on/off = %.3f (%+.1f%%); webhookd+nats CPU per 100k events %.2f s off, %.2f s on (%+.1f%%)",
				strings.Join(ro, "/"), strings.Join(rn, "/"), ratio, (ratio-1)*100, cpuOff, cpuOn, (cpuOn/cpuOff-1)*100),
			fmt.Sprintf("%d attempts of %.0f events each, %.1f MiB on disk: %.0f MiB per million such attempts",
				disk.msgs, disk.eventsPerAttempt(b.cfg.drainEvents*len(on)), float64(disk.bytes)/(1<<20), disk.perMillion()))
		rows = append(rows, offRow, onRow)
	}
	return rows, nil
}

// drainLogPhases drains the backlog four times in one env with the log
// off, on, on, off (webhookd restarts for each drain, with the flag of
// its phase), and reads the log's size at the end.
func (b *bench) drainLogPhases(ctx context.Context, batch int) (off, on []backlog, disk logDisk, err error) {
	var flags []string
	if batch > 0 {
		flags = append(flags, "--batch-max-events", strconv.Itoa(batch))
	}
	e, sink, ids, err := b.setup(ctx, fmt.Sprintf("drain-log-b%d", batch), 1, 1, nil, flags...)
	if err != nil {
		return nil, nil, disk, err
	}
	defer e.close()
	base := e.wdFlags
	n := b.cfg.drainEvents
	for phase, logOn := range []bool{false, true, true, false} {
		if phase > 0 { // webhookd is stopped after a drain
			if err := e.startWebhookd(ctx); err != nil {
				return nil, nil, disk, err
			}
		}
		// The next start, inside drainBacklog, takes this phase's flag
		// (a later flag wins).
		e.wdFlags = append(append([]string(nil), base...), "--activity="+strconv.FormatBool(logOn))
		prep, err := b.prepareBacklog(ctx, e, ids, []string{topic + ".acct0"}, n)
		if err != nil {
			return nil, nil, disk, err
		}
		bl, err := b.drainBacklog(ctx, e, ids, []*sinkProc{sink}, int64(prep.pub.Acked()), b.backlogTimeout(prep.pub.Acked(), 5_000))
		if err != nil {
			return nil, nil, disk, err
		}
		bl.Ceiling = prep.ceiling
		e.stopWebhookd() // flushes the log's last attempts
		if logOn {
			on = append(on, bl)
		} else {
			off = append(off, bl)
		}
	}
	st, err := e.js.Stream(ctx, activityStream)
	if err != nil {
		return nil, nil, disk, fmt.Errorf("the attempt log stream: %w", err)
	}
	disk.msgs = int64(st.CachedInfo().State.Msgs)
	disk.bytes, err = dirBytes(filepath.Join(e.dir, "jetstream"), activityStream)
	return off, on, disk, err
}

// cpuPer100k is the CPU webhookd and nats-server spent per 100k events
// over drains, in seconds of one core.
func cpuPer100k(bs []backlog) float64 {
	var cpu float64
	var events int64
	for _, b := range bs {
		cpu += (b.Usage["webhookd"].CPUPercent + b.Usage["nats"].CPUPercent) / 100 * b.Seconds
		events += b.Want
	}
	if events == 0 {
		return 0
	}
	return cpu / float64(events) * 1e5
}

// logDisk is the attempt log's size after a drain.
type logDisk struct {
	msgs, bytes int64
}

func (d logDisk) perMillion() float64 {
	if d.msgs == 0 {
		return 0
	}
	return float64(d.bytes) / float64(d.msgs) * 1e6 / (1 << 20)
}

func (d logDisk) eventsPerAttempt(events int) float64 {
	if d.msgs == 0 {
		return 0
	}
	return float64(events) / float64(d.msgs)
}

// dirBytes sums the files under root inside directories named name (the
// stream's directory in a nats-server store).
func dirBytes(root, name string) (int64, error) {
	var n int64
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == name {
			return filepath.WalkDir(path, func(_ string, f fs.DirEntry, err error) error {
				if err != nil || f.IsDir() {
					return err
				}
				info, err := f.Info()
				if err == nil {
					n += info.Size()
				}
				return err
			})
		}
		return nil
	})
	return n, err
}
