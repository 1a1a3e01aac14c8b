package console

import (
	"context"
	"time"

	"github.com/webhookd/webhookd/subscriptions"
)

// The chart shows the last hour in 12 bars of 5 minutes.
const (
	chartBars   = 12
	chartStep   = 5 * time.Minute
	chartHeight = 80 // px of the tallest bar
	barWidth    = 22
	barGap      = 6
)

// chart is a bar chart of delivered and failed events, drawn as SVG
// rectangles whose sizes are attributes: the CSP forbids inline style,
// not SVG geometry.
type chart struct {
	Bars          []bar
	Width, Height int
	MaxDelivered  int64
	MaxFailed     int64
	// Delivered and Failed are the hour's totals.
	Delivered, Failed int64
	// Partial: the read stopped at its budget; older bars undercount.
	Partial bool
}

// bar is one window; Y and H are the delivered part, FY and FH the
// failed part stacked above it.
type bar struct {
	X, W, Y, H, FY, FH int
	From               time.Time
	Delivered, Failed  int64
}

// deliveryChart reads the last hour's windows in one bounded read.
func deliveryChart(ctx context.Context, dc DeliveredCounter, wh subscriptions.Webhook, now time.Time) (*chart, error) {
	start := now.Add(-chartBars * chartStep)
	counts, partial, err := dc.Delivered(ctx, wh, start, chartStep, chartBars)
	if err != nil {
		return nil, err
	}
	c := &chart{Width: chartBars * (barWidth + barGap), Height: chartHeight + 2, Partial: partial}
	var top int64 = 1
	for i := range chartBars {
		b := bar{X: i * (barWidth + barGap), W: barWidth, From: start.Add(time.Duration(i) * chartStep)}
		if i < len(counts) {
			b.Delivered, b.Failed = counts[i].Delivered, counts[i].Failed
		}
		c.MaxDelivered, c.MaxFailed = max(c.MaxDelivered, b.Delivered), max(c.MaxFailed, b.Failed)
		c.Delivered, c.Failed = c.Delivered+b.Delivered, c.Failed+b.Failed
		top = max(top, b.Delivered+b.Failed)
		c.Bars = append(c.Bars, b)
	}
	for i := range c.Bars {
		b := &c.Bars[i]
		b.H = int(b.Delivered * chartHeight / top)
		b.FH = int(b.Failed * chartHeight / top)
		b.Y = c.Height - b.H
		b.FY = b.Y - b.FH
	}
	return c, nil
}
