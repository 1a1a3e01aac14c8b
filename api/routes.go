package api

import (
	"net/http"
	"slices"
	"strings"
)

// routes returns the mux with every route of the API. Klaviyo's paths
// come in both forms: revision 2024-07-15 (Node SDK v11) used trailing
// slashes, later revisions do not. {$} keeps a trailing-slash pattern
// from matching a whole subtree. A path with a route but not for the
// request's method gets a JSON:API 405; any other path a JSON:API 404.
func (s *server) routes() http.Handler {
	table := []struct {
		method, pattern string
		h               http.Handler
	}{
		{"GET", "/healthz", http.HandlerFunc(s.healthz)},

		{"GET", "/api/webhooks", s.auth(s.listWebhooks)},
		{"GET", "/api/webhooks/{$}", s.auth(s.listWebhooks)},
		{"POST", "/api/webhooks", s.auth(s.createWebhook)},
		{"POST", "/api/webhooks/{$}", s.auth(s.createWebhook)},
		{"GET", "/api/webhooks/{id}", s.auth(s.getWebhook)},
		{"GET", "/api/webhooks/{id}/{$}", s.auth(s.getWebhook)},
		{"PATCH", "/api/webhooks/{id}", s.auth(s.updateWebhook)},
		{"PATCH", "/api/webhooks/{id}/{$}", s.auth(s.updateWebhook)},
		{"DELETE", "/api/webhooks/{id}", s.auth(s.deleteWebhook)},
		{"DELETE", "/api/webhooks/{id}/{$}", s.auth(s.deleteWebhook)},

		// Topic ids contain ':' and arrive percent-encoded
		// (event%3Aklaviyo.sent_sms); PathValue decodes them.
		{"GET", "/api/webhook-topics", s.auth(s.listTopics)},
		{"GET", "/api/webhook-topics/{$}", s.auth(s.listTopics)},
		{"GET", "/api/webhook-topics/{id}", s.auth(s.getTopic)},
		{"GET", "/api/webhook-topics/{id}/{$}", s.auth(s.getTopic)},

		// Extension: declare an account's custom topic before its first
		// event (topics.go).
		{"POST", "/webhookd/webhook-topics", s.auth(s.declareTopic)},
		{"POST", "/webhookd/webhook-topics/{$}", s.auth(s.declareTopic)},

		// Klaviyo's Flows API, for flow webhooks (flows.go).
		{"GET", "/api/flows", s.auth(s.flowsOn(s.listFlows))},
		{"POST", "/api/flows", s.auth(s.flowsOn(s.createFlow))},
		{"GET", "/api/flows/{id}", s.auth(s.flowsOn(s.getFlow))},
		{"PATCH", "/api/flows/{id}", s.auth(s.flowsOn(s.updateFlow))},
		{"DELETE", "/api/flows/{id}", s.auth(s.flowsOn(s.deleteFlow))},
		{"GET", "/api/flows/{id}/flow-actions", s.auth(s.flowsOn(s.listFlowActions))},
		{"GET", "/api/flows/{id}/relationships/flow-actions", s.auth(s.flowsOn(s.listFlowActionIDs))},
		{"GET", "/api/flow-actions/{id}/flow", s.auth(s.flowsOn(s.getFlowOfAction))},
		{"GET", "/api/flow-actions/{id}", s.auth(s.flowsOn(s.getFlowAction))},
		{"PATCH", "/api/flow-actions/{id}", s.auth(s.flowsOn(s.updateFlowAction))},
		{"DELETE", "/api/flow-actions/{id}", s.auth(s.flowsOn(s.deleteFlowAction))},
		{"GET", "/webhookd/flow-actions/{id}/counts", s.auth(s.flowsOn(s.getFlowActionCounts))},
		{"GET", "/webhookd/flow-actions/{id}/attempts", s.auth(s.flowsOn(s.flowActionAttempts(false)))},
		{"GET", "/webhookd/flow-actions/{id}/attempts/{attempt_id}", s.auth(s.flowsOn(s.flowActionAttempts(true)))},
		{"GET", "/webhookd/flow-actions/{id}/activity", s.auth(s.flowsOn(s.flowActionActivity))},
		{"GET", "/webhookd/flow-actions/{id}/activity/{$}", s.auth(s.flowsOn(s.flowActionActivity))},

		// Extension: why a webhook is in error or was disabled.
		{"GET", "/webhookd/webhooks/{id}/delivery-state", s.auth(s.getDeliveryState)},

		// Extension: the attempt log (attempts.go).
		{"GET", "/webhookd/webhooks/{id}/attempts", s.auth(s.webhookAttempts(false))},
		{"GET", "/webhookd/webhooks/{id}/attempts/{$}", s.auth(s.webhookAttempts(false))},
		{"GET", "/webhookd/webhooks/{id}/attempts/{attempt_id}", s.auth(s.webhookAttempts(true))},
		{"GET", "/webhookd/webhooks/{id}/attempts/{attempt_id}/{$}", s.auth(s.webhookAttempts(true))},
		{"GET", "/webhookd/webhooks/{id}/delivery-state/{$}", s.auth(s.getDeliveryState)},

		// Extension: replay a time window, send a test event.
		{"POST", "/webhookd/webhooks/{id}/replays", s.auth(s.createReplay)},
		{"POST", "/webhookd/webhooks/{id}/replays/{$}", s.auth(s.createReplay)},
		{"GET", "/webhookd/webhooks/{id}/replays", s.auth(s.listReplays)},
		{"GET", "/webhookd/webhooks/{id}/replays/{$}", s.auth(s.listReplays)},
		{"GET", "/webhookd/webhooks/{id}/replays/{replay_id}", s.auth(s.getReplay)},
		{"GET", "/webhookd/webhooks/{id}/replays/{replay_id}/{$}", s.auth(s.getReplay)},
		{"DELETE", "/webhookd/webhooks/{id}/replays/{replay_id}", s.auth(s.cancelReplay)},
		{"DELETE", "/webhookd/webhooks/{id}/replays/{replay_id}/{$}", s.auth(s.cancelReplay)},
		{"POST", "/webhookd/webhooks/{id}/test", s.auth(s.testSend)},
		{"POST", "/webhookd/webhooks/{id}/test/{$}", s.auth(s.testSend)},
		// Extension: staged secret rotation (rotations.go).
		{"POST", "/webhookd/webhooks/{id}/secret-rotations", s.auth(s.createRotation)},
		{"POST", "/webhookd/webhooks/{id}/secret-rotations/{$}", s.auth(s.createRotation)},
		{"GET", "/webhookd/webhooks/{id}/secret-rotations", s.auth(s.listRotations)},
		{"GET", "/webhookd/webhooks/{id}/secret-rotations/{$}", s.auth(s.listRotations)},
		{"GET", "/webhookd/webhooks/{id}/secret-rotations/{rid}", s.auth(s.getRotation)},
		{"GET", "/webhookd/webhooks/{id}/secret-rotations/{rid}/{$}", s.auth(s.getRotation)},
	}

	// Every route but /healthz also answers with a trailing slash; the
	// table spells the twin out where it predates this rule.
	listed := map[string]bool{}
	for _, rt := range table {
		listed[rt.method+" "+rt.pattern] = true
	}
	for _, rt := range table {
		twin := rt.pattern + "/{$}"
		if rt.pattern != "/healthz" && !strings.HasSuffix(rt.pattern, "{$}") && !listed[rt.method+" "+twin] {
			table = append(table, struct {
				method, pattern string
				h               http.Handler
			}{rt.method, twin, rt.h})
			listed[rt.method+" "+twin] = true
		}
	}

	mux := http.NewServeMux()
	allowed := map[string][]string{}
	for _, rt := range table {
		mux.Handle(rt.method+" "+rt.pattern, rt.h)
		allowed[rt.pattern] = append(allowed[rt.pattern], rt.method)
		if rt.method == http.MethodGet {
			allowed[rt.pattern] = append(allowed[rt.pattern], http.MethodHead)
		}
	}
	for pattern, methods := range allowed {
		mux.Handle(pattern, s.methodNotAllowed(methods))
	}
	if s.cfg.Console != nil {
		mux.Handle("/console/", s.cfg.Console)
		// The console redirects /console to /console/ itself, so the
		// redirect carries its security headers too.
		mux.Handle("/console", s.cfg.Console)
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { s.fail(w, r, errNotFound) })
	return mux
}

// methodNotAllowed answers a method without a route on a known path.
func (s *server) methodNotAllowed(methods []string) http.Handler {
	methods = slices.Sorted(slices.Values(methods))
	allow := strings.Join(methods, ", ")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		s.fail(w, r, methodNotAllowed(r.Method))
	})
}

// healthz reports that the process serves HTTP; it needs no key.
func (s *server) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Webhookd-Version", s.cfg.Version)
	_, _ = w.Write([]byte("ok"))
}
