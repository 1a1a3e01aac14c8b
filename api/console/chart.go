package console

import (
	"context"
	"time"
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
}

// bar is one window; Y and H are the delivered part, FY and FH the
// failed part stacked above it.
type bar struct {
	X, W, Y, H, FY, FH int
	From               time.Time
	Delivered, Failed  int64
}

// deliveryChart asks the counter for the events since each window's
// start; a window's own count is the difference with the next one.
func deliveryChart(ctx context.Context, dc DeliveredCounter, id string, now time.Time) (*chart, error) {
	type counts struct{ ok, failed int64 }
	cum := make([]counts, chartBars+1) // cum[i]: since the start of window i; cum[chartBars] = 0
	start := now.Add(-chartBars * chartStep)
	for i := range chartBars {
		ok, failed, err := dc.Delivered(ctx, id, start.Add(time.Duration(i)*chartStep))
		if err != nil {
			return nil, err
		}
		cum[i] = counts{ok, failed}
	}
	c := &chart{Width: chartBars * (barWidth + barGap), Height: chartHeight + 2}
	var top int64 = 1
	for i := range chartBars {
		b := bar{X: i * (barWidth + barGap), W: barWidth, From: start.Add(time.Duration(i) * chartStep),
			Delivered: max(cum[i].ok-cum[i+1].ok, 0), Failed: max(cum[i].failed-cum[i+1].failed, 0)}
		c.MaxDelivered, c.MaxFailed = max(c.MaxDelivered, b.Delivered), max(c.MaxFailed, b.Failed)
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
