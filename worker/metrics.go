package worker

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/alertdesk/alertdesk/dlq"
)

// Outcomes of an event, the values of the outcome label.
const (
	outcomeCreated      = "created"
	outcomeUpdated      = "updated"
	outcomeClosed       = "closed"
	outcomeReopened     = "reopened"
	outcomeDuplicate    = "duplicate"
	outcomeStale        = "stale"
	outcomeDeadLettered = "dead-lettered"
	outcomeRetried      = "retried"
)

// metrics are the worker's Prometheus metrics (docs/operations.md, "Observability").
type metrics struct {
	events             *prometheus.CounterVec
	topdeskRequests    *prometheus.CounterVec
	topdeskLatency     *prometheus.HistogramVec
	topdeskWait        *prometheus.HistogramVec
	stateLatency       *prometheus.HistogramVec
	dlq                *prometheus.CounterVec
	inFlight           prometheus.Gauge
	endToEnd           prometheus.Histogram
	breakerOpen        prometheus.Gauge
	authOK             prometheus.Gauge
	pending            prometheus.Gauge
	ackPending         prometheus.Gauge
	clamped            prometheus.Counter
	duplicatesRepaired prometheus.Counter
	timersPending      prometheus.Gauge
	outcomes           map[string]prometheus.Counter // events by outcome, looked up once
	stateOps           map[stateOp]prometheus.Observer
	// Noise control (noise.go).
	flapStarted, flapEnded prometheus.Counter

	fields fieldsMetrics // fields.go

	// grouping
	majorCalls, stormLinked prometheus.Counter
}

// outcome is the events counter of outcome o.
func (m *metrics) outcome(o string) prometheus.Counter {
	if c, ok := m.outcomes[o]; ok {
		return c
	}
	return m.events.WithLabelValues(o)
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "alertdesk_events_total",
			Help: "Alert events handled, by outcome (created, updated, closed, reopened, duplicate, stale, dead-lettered, retried, suppressed, resolve-delayed, flapping, flapping-ended).",
		}, []string{"outcome"}),
		topdeskRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "alertdesk_topdesk_requests_total",
			Help: "Requests to the TOPdesk API by operation and result (ok, an HTTP status code, or error for transport failures).",
		}, []string{"operation", "status"}),
		topdeskLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "alertdesk_topdesk_request_duration_seconds",
			Help:    "Latency of TOPdesk API requests by operation, from sending to the answer (alertdesk_topdesk_wait_seconds is the time before sending).",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"operation"}),
		topdeskWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "alertdesk_topdesk_wait_seconds",
			Help:    "Time TOPdesk API requests waited in this worker before they were sent, by operation: for a free slot of the concurrency limit, a Retry-After pause or the rate limit.",
			Buckets: []float64{.0001, .001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"operation"}),
		stateLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "alertdesk_state_operation_duration_seconds",
			Help:    "Latency of state operations on the KV bucket by operation (read, claim, commit, write).",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"operation"}),
		dlq: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "alertdesk_dlq_entries_total",
			Help: "Events dead-lettered, by class (invalid, template, rejected, exhausted).",
		}, []string{"class"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "alertdesk_events_in_flight",
			Help: "Events being handled by this worker.",
		}),
		endToEnd: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "alertdesk_end_to_end_latency_seconds",
			Help:    "Time from the JetStream publish of an event to the end of its handling (TOPdesk done).",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}),
		breakerOpen: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "alertdesk_breaker_open",
			Help: "1 while the TOPdesk circuit breaker is open (pulling paused), else 0.",
		}),
		authOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "alertdesk_topdesk_credentials_ok",
			Help: "0 while TOPdesk rejects the credentials (401/403), else 1.",
		}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "alertdesk_consumer_pending",
			Help: "Events in the stream not yet delivered to any worker (consumer lag).",
		}),
		ackPending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "alertdesk_consumer_ack_pending",
			Help: "Events delivered to workers and not yet settled, across all workers.",
		}),
	}
	m.clamped = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "alertdesk_event_time_clamped_total",
		Help: "Events whose time lay more than lifecycle.maxClockAhead after their publish time and was replaced by it.",
	})
	m.duplicatesRepaired = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "alertdesk_duplicates_repaired_total",
		Help: "Open incidents closed because an older open incident of the same alert key exists.",
	})
	m.timersPending = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "alertdesk_timers_pending",
		Help: "Durable timers stored (resolve delay, flap quiet, maintenance-window end), due or not yet due.",
	})
	m.fields = newFieldsMetrics()
	m.authOK.Set(1)
	m.outcomes = make(map[string]prometheus.Counter)
	for _, o := range []string{outcomeCreated, outcomeUpdated, outcomeClosed, outcomeReopened, outcomeDuplicate, outcomeStale, outcomeDeadLettered, outcomeRetried} {
		m.outcomes[o] = m.events.WithLabelValues(o)
	}
	m.outcomes[outcomeSuppressed] = m.events.WithLabelValues(outcomeSuppressed) // maintenance windows
	m.stateOps = make(map[stateOp]prometheus.Observer)
	for _, op := range []stateOp{opRead, opClaim, opCommit, opWrite} {
		m.stateOps[op] = m.stateLatency.WithLabelValues(string(op))
	}
	for _, c := range []dlq.Class{dlq.ClassInvalid, dlq.ClassTemplate, dlq.ClassRejected, dlq.ClassExhausted} {
		m.dlq.WithLabelValues(string(c))
	}
	if reg != nil {
		reg.MustRegister(m.events, m.topdeskRequests, m.topdeskLatency, m.topdeskWait, m.stateLatency, m.dlq, m.inFlight, m.endToEnd,
			m.breakerOpen, m.authOK, m.pending, m.ackPending, m.clamped, m.duplicatesRepaired, m.timersPending)
		reg.MustRegister(m.fields.collectors()...)
	}
	noiseMetrics(m, reg)
	m.groupMetrics(reg)
	return m
}
