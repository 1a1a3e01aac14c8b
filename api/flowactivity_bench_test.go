package api

import (
	"fmt"
	"testing"
	"time"

	"github.com/webhookd/webhookd/dispatcher/activity"
)

// BenchmarkActivityMatch is the activity view's cost per stored attempt
// on top of the attempt reader's (README, "Flow webhooks"): one
// reader-budget's worth (10,000) of flow attempts, two events in
// three attempts, one of them retried (its 503 superseded by a 200), through the matcher with and without a status filter.
//
//	go test -run '^$' -bench ActivityMatch ./api/
func BenchmarkActivityMatch(b *testing.B) {
	now := time.Now()
	atts := make([]activity.Attempt, activity.DefaultMaxScan)
	for i := range atts {
		a := activity.Attempt{ID: fmt.Sprintf("01950000-0000-7000-8000-%012d", i), ProfileID: "p", Email: "ada@example.com",
			StartedAt: now.Add(-time.Duration(i) * time.Second), FirstAt: now.Add(-time.Hour), Attempt: 1,
			Outcome: activity.Delivered, Status: 200, ExternalIDs: []string{fmt.Sprintf("ev-%d-%d", i/3, i%3/2)}}
		if i%3 == 1 { // the older attempt of a retried event
			a.Outcome, a.Status, a.ErrorClass, a.Error = activity.Failed, 503, activity.ClassServer, "HTTP 503"
			a.NextAttemptAt = now.Add(-time.Minute)
		}
		atts[i] = a
	}
	skipped, err := compileActivityFilter(`equals(status,"skipped")`, &activity.Query{})
	if err != nil {
		b.Fatal(err)
	}
	for name, f := range map[string]activityFilter{"all": nil, "status-filter": skipped} {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				match, _ := activityMatcher(now, false, f)
				for i := range atts {
					match(&atts[i])
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(atts)), "ns/attempt")
		})
	}
}
