// Package metrics exports the provisioner's Prometheus metrics: consumer lag as
// lag exporters compute it, orders by outcome, Webex calls, commits, rebalances.
package metrics

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/segmentio/kafka-go"

	"github.com/acme-sp/wholesale-provisioner/consumer"
	"github.com/acme-sp/wholesale-provisioner/provisioning"
)

const ns = "provisioner"

// Metrics holds the collectors. Its methods are safe for concurrent use.
type Metrics struct {
	reg *prometheus.Registry

	orders       *prometheus.CounterVec
	deadLetters  *prometheus.CounterVec
	requests     *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	retries      *prometheus.CounterVec
	retryAfter   prometheus.Counter
	commits      prometheus.Counter
	commitErrors prometheus.Counter
	commitTime   prometheus.Histogram
	rebalances   prometheus.Counter
	drain        prometheus.Histogram
	assigned     prometheus.Gauge
	customers    *prometheus.CounterVec

	// Of the time this instance held no partition of the orders topic:
	held        map[int]bool
	emptySince  time.Time // zero while it holds some
	emptyBefore time.Duration

	mu        sync.Mutex
	consumers *consumerCollector // nil until a consumer is watched

	// calls caches the series of each (endpoint, method, status) of a Webex
	// call: finding them by label values hashes the labels on every call.
	calls sync.Map // callKey -> callSeries
}

type callKey struct {
	endpoint, method string
	status           int // 0 when the call got no answer
}

type callSeries struct {
	duration prometheus.Observer
	requests prometheus.Counter
}

func (m *Metrics) callSeries(k callKey) callSeries {
	if s, ok := m.calls.Load(k); ok {
		return s.(callSeries)
	}
	code := "error"
	if k.status != 0 {
		code = strconv.Itoa(k.status)
	}
	s := callSeries{
		duration: m.duration.WithLabelValues(k.endpoint, k.method),
		requests: m.requests.WithLabelValues(k.endpoint, k.method, code),
	}
	m.calls.Store(k, s)
	return s
}

// New returns the metrics, registered with a registry of their own along with
// the Go runtime and process collectors.
func New() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.orders = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "orders_total",
		Help: "Orders answered, by outcome (provisioned, failed, pending_user_action, none) and reason."}, []string{"outcome", "reason"})
	m.deadLetters = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "dead_letters_total",
		Help: "Records written to the dead-letter topic, by reason."}, []string{"reason"})
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "webex_requests_total",
		Help: "Webex API calls by endpoint, method and HTTP status (\"error\" when no answer came)."}, []string{"endpoint", "method", "code"})
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "webex_request_duration_seconds",
		Help: "Duration of Webex API calls.", Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}}, []string{"endpoint", "method"})
	m.retries = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "webex_retries_total",
		Help: "Webex calls retried after a transient error, by workflow step."}, []string{"step"})
	m.retryAfter = prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "webex_retry_after_seconds_total",
		Help: "Seconds of waiting asked for by Retry-After headers."})
	m.commits = prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "kafka_commits_total", Help: "Offset commits made."})
	m.commitErrors = prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "kafka_commit_errors_total", Help: "Offset commits that failed."})
	m.commitTime = prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: "kafka_commit_duration_seconds",
		Help: "Duration of offset commits.", Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 10)})
	m.rebalances = prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "consumer_rebalances_total",
		Help: "Consumer-group generations joined (one per rebalance)."})
	m.drain = prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: "consumer_drain_seconds",
		Help:    "Time this instance took to finish the orders in flight of the partitions it released and commit them (a rebalance or a stop; bounded by --shutdown-timeout).",
		Buckets: prometheus.ExponentialBuckets(0.01, 2.5, 10)})
	m.assigned = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "consumer_assigned_partitions",
		Help: "Partitions assigned to this instance."})
	m.customers = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "customer_orders_total",
		Help: "Customer orders answered, by outcome (provisioned, provisioned_with_errors, pending_review, updated, removed, failed, none) and reason."}, []string{"outcome", "reason"})
	m.held, m.emptySince = map[int]bool{}, time.Now()
	unassigned := prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: ns, Name: "consumer_unassigned_seconds_total",
		Help: "Seconds this instance held no partition of the orders topic: from its start and each time a rebalance took them all, until it got some."},
		m.unassignedSeconds)
	m.reg.MustRegister(m.orders, m.deadLetters, m.customers, m.requests, m.duration, m.retries, m.retryAfter,
		m.commits, m.commitErrors, m.commitTime, m.rebalances, m.drain, m.assigned, unassigned,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the metrics in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Registry is where collectors of other parts may be added.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Finished counts one answered record (pipeline observer): its outcome ("none"
// when no order id could be read) and reason, and its dead letter if any.
func (m *Metrics) Finished(outcome, reason, deadLetterReason string) {
	if outcome == "" {
		outcome = "none"
	}
	m.orders.WithLabelValues(outcome, reason).Inc()
	if deadLetterReason != "" {
		m.deadLetters.WithLabelValues(deadLetterReason).Inc()
	}
}

// Customers is the pipeline observer of the customer orders: their
// outcomes are counted apart from the subscribers', their dead letters with
// the others.
func (m *Metrics) Customers() CustomerObserver { return CustomerObserver{m} }

// CustomerObserver counts answered customer orders.
type CustomerObserver struct{ m *Metrics }

// Finished counts one answered customer order.
func (o CustomerObserver) Finished(outcome, reason, deadLetterReason string) {
	if outcome == "" {
		outcome = "none"
	}
	o.m.customers.WithLabelValues(outcome, reason).Inc()
	if deadLetterReason != "" {
		o.m.deadLetters.WithLabelValues(deadLetterReason).Inc()
	}
}

// Retried counts a retry of a workflow step (workflow observer).
func (m *Metrics) Retried(step string, _ error, retryAfter time.Duration) {
	m.retries.WithLabelValues(step).Inc()
	if retryAfter > 0 {
		m.retryAfter.Add(retryAfter.Seconds())
	}
}

// Committed records an offset commit (consumer observer).
func (m *Metrics) Committed(took time.Duration, err error) {
	if err != nil {
		m.commitErrors.Inc()
		return
	}
	m.commits.Inc()
	m.commitTime.Observe(took.Seconds())
}

// Assigned records a new generation's assignment: every partition the
// instance holds in it (consumer observer).
func (m *Metrics) Assigned(_ int32, partitions []int) {
	m.rebalances.Inc()
	m.mu.Lock()
	defer m.mu.Unlock()
	clear(m.held)
	for _, p := range partitions {
		m.held[p] = true
	}
	m.heldChanged()
}

// Revoked records that partitions were released, and their drain
// (consumer observer).
func (m *Metrics) Revoked(partitions []int, drained time.Duration) {
	m.drain.Observe(drained.Seconds())
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range partitions {
		delete(m.held, p)
	}
	m.heldChanged()
}

// heldChanged updates the assigned gauge and the time without partitions; m.mu is held.
func (m *Metrics) heldChanged() {
	m.assigned.Set(float64(len(m.held)))
	switch empty := len(m.held) == 0; {
	case empty && m.emptySince.IsZero():
		m.emptySince = time.Now()
	case !empty && !m.emptySince.IsZero():
		m.emptyBefore += time.Since(m.emptySince)
		m.emptySince = time.Time{}
	}
}

func (m *Metrics) unassignedSeconds() float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	d := m.emptyBefore
	if !m.emptySince.IsZero() {
		d += time.Since(m.emptySince)
	}
	return d.Seconds()
}

// ObserveCall counts and times one Webex call (provisioning's CallObserver).
// The endpoint is the call's path template, never a subscriber id or a query;
// status is 0 when the call got no answer.
func (m *Metrics) ObserveCall(method, endpoint string, status int, elapsed time.Duration) {
	s := m.callSeries(callKey{endpoint: endpoint, method: method, status: status})
	s.duration.Observe(elapsed.Seconds())
	s.requests.Inc()
}

// ConsumerSource is what the consumer collector reads at scrape time.
type ConsumerSource interface {
	Stats() consumer.Stats
}

// LimiterSource is what the rate-limiter collector reads at scrape time.
type LimiterSource interface {
	Stats() provisioning.LimiterStats
}

// WatchConsumer adds the gauges read from the consumer and, like a lag exporter,
// the end and committed offsets of group on topic read from the broker. It
// may be called once per consumer of the instance (the orders', the customer
// orders'): the series of each carry its topic, and the instance-wide gauges
// add theirs up.
func (m *Metrics) WatchConsumer(c ConsumerSource, client *kafka.Client, group, topic string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	w := &watchedConsumer{src: c, client: client, group: group, topic: topic}
	if m.consumers == nil {
		m.consumers = &consumerCollector{}
		m.reg.MustRegister(m.consumers)
	}
	m.consumers.add(w)
}

// WatchLimiter adds the rate limiter's counters and gauges.
func (m *Metrics) WatchLimiter(l LimiterSource) {
	m.reg.MustRegister(&limiterCollector{src: l})
}

var (
	descLag = prometheus.NewDesc(ns+"_consumer_lag_records", "Records not yet committed by the group: end offset minus committed offset, as lag exporters compute it.",
		[]string{"topic", "partition"}, nil)
	descEnd       = prometheus.NewDesc(ns+"_consumer_end_offset", "The partition's end offset (high watermark).", []string{"topic", "partition"}, nil)
	descCommitted = prometheus.NewDesc(ns+"_consumer_committed_offset", "The group's committed offset (-1: none).", []string{"topic", "partition"}, nil)
	descLagSecs   = prometheus.NewDesc(ns+"_consumer_lag_seconds", "Age of the oldest unfinished order on a partition assigned to this instance (0: none pending).",
		[]string{"topic", "partition"}, nil)
	descGap = prometheus.NewDesc(ns+"_consumer_uncommitted_completed_records", "Records completed but not yet committed on an assigned partition (completed minus committed offset).",
		[]string{"topic", "partition"}, nil)
	descBuffered = prometheus.NewDesc(ns+"_consumer_buffered_records", "Fetched but unfinished records of an assigned partition.", []string{"topic", "partition"}, nil)
	descHeld     = prometheus.NewDesc(ns+"_consumer_partition_assigned", "1 for each partition this instance holds: join it to the lag series by topic and partition to see who serves a lagging partition.", []string{"topic", "partition"}, nil)
	descInFlight = prometheus.NewDesc(ns+"_orders_in_flight", "Orders being handled now.", nil, nil)
	descBlocked  = prometheus.NewDesc(ns+"_consumer_blocked_records", "Records queued behind an order of the same key that waits to be retried.", nil, nil)
	descRetrying = prometheus.NewDesc(ns+"_consumer_retrying_keys", "Keys whose first order waits to be retried.", nil, nil)
	descFault    = prometheus.NewDesc(ns+"_webex_configuration_fault", "1 while a configuration fault (e.g. a revoked token) pauses consumption.", nil, nil)
	descUp       = prometheus.NewDesc(ns+"_kafka_up", "1 when the broker answered the last lag query.", nil, nil)
)

// consumerCollector collects the series of every watched consumer.
type consumerCollector struct {
	mu        sync.Mutex
	consumers []*watchedConsumer
}

func (c *consumerCollector) add(w *watchedConsumer) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.consumers = append(c.consumers, w)
}

// watchedConsumer is one consumer, and its group's lag read from the broker.
type watchedConsumer struct {
	src    ConsumerSource
	client *kafka.Client
	group  string
	topic  string

	mu     sync.Mutex
	cached []consumer.PartitionLag
	at     time.Time
	err    error
}

func (c *consumerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descLag, descEnd, descCommitted, descLagSecs, descGap, descBuffered, descHeld, descInFlight, descBlocked, descRetrying, descFault, descUp} {
		ch <- d
	}
}

// lag queries the broker at most every 5 seconds, however often it is scraped.
func (c *watchedConsumer) lag() ([]consumer.PartitionLag, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.at) < 5*time.Second {
		return c.cached, c.err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	c.cached, c.err = consumer.Lag(ctx, c.client, c.group, c.topic)
	c.at = time.Now()
	return c.cached, c.err
}

func (c *consumerCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	consumers := slices.Clone(c.consumers)
	c.mu.Unlock()
	var inFlight, blocked, retrying, fault float64
	up := 1.0
	for _, w := range consumers {
		s := w.src.Stats()
		inFlight += float64(s.InFlight)
		blocked += float64(s.BlockedRecords)
		retrying += float64(s.RetryingKeys)
		if s.Paused {
			fault = 1
		}
		if !w.collect(ch, s) {
			up = 0
		}
	}
	ch <- prometheus.MustNewConstMetric(descInFlight, prometheus.GaugeValue, inFlight)
	ch <- prometheus.MustNewConstMetric(descBlocked, prometheus.GaugeValue, blocked)
	ch <- prometheus.MustNewConstMetric(descRetrying, prometheus.GaugeValue, retrying)
	ch <- prometheus.MustNewConstMetric(descFault, prometheus.GaugeValue, fault)
	ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, up)
}

// collect sends the consumer's partition series; false when the broker did
// not answer the lag query.
func (c *watchedConsumer) collect(ch chan<- prometheus.Metric, s consumer.Stats) bool {
	for _, p := range s.Partitions {
		part := strconv.Itoa(p.Partition)
		ch <- prometheus.MustNewConstMetric(descLagSecs, prometheus.GaugeValue, p.OldestAge.Seconds(), c.topic, part)
		ch <- prometheus.MustNewConstMetric(descBuffered, prometheus.GaugeValue, float64(p.Buffered), c.topic, part)
		ch <- prometheus.MustNewConstMetric(descHeld, prometheus.GaugeValue, 1, c.topic, part)
		if p.Committed >= 0 && p.Completed >= p.Committed {
			ch <- prometheus.MustNewConstMetric(descGap, prometheus.GaugeValue, float64(p.Completed-p.Committed), c.topic, part)
		}
	}
	lag, err := c.lag()
	for _, l := range lag {
		part := strconv.Itoa(l.Partition)
		ch <- prometheus.MustNewConstMetric(descLag, prometheus.GaugeValue, float64(l.Lag), c.topic, part)
		ch <- prometheus.MustNewConstMetric(descEnd, prometheus.GaugeValue, float64(l.End), c.topic, part)
		ch <- prometheus.MustNewConstMetric(descCommitted, prometheus.GaugeValue, float64(l.Committed), c.topic, part)
	}
	return err == nil
}

var (
	descLimWaits    = prometheus.NewDesc(ns+"_webex_rate_limiter_waits_total", "Webex calls that had to wait for the shared rate budget.", nil, nil)
	descLimWaitSecs = prometheus.NewDesc(ns+"_webex_rate_limiter_wait_seconds_total", "Time Webex calls spent waiting for the shared rate budget.", nil, nil)
	descLimRate     = prometheus.NewDesc(ns+"_webex_rate_limit_requests_per_second", "The request rate the limiter allows now (0: unlimited).", nil, nil)
	descLimThrottle = prometheus.NewDesc(ns+"_webex_throttled_total", "429 answers seen by the limiter.", nil, nil)
	descLimPauses   = prometheus.NewDesc(ns+"_webex_pauses_total", "Shared pauses started by a Retry-After.", nil, nil)
	descLimInProg   = prometheus.NewDesc(ns+"_webex_requests_in_progress", "Webex calls in progress.", nil, nil)
	descLimShare    = prometheus.NewDesc(ns+"_webex_budget_share", "The fraction of the group's Webex rate budget this instance takes: its share of the orders topic's partitions.", nil, nil)
)

type limiterCollector struct{ src LimiterSource }

func (c *limiterCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descLimWaits, descLimWaitSecs, descLimRate, descLimThrottle, descLimPauses, descLimInProg, descLimShare} {
		ch <- d
	}
}

func (c *limiterCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.src.Stats()
	ch <- prometheus.MustNewConstMetric(descLimWaits, prometheus.CounterValue, float64(s.Waits))
	ch <- prometheus.MustNewConstMetric(descLimWaitSecs, prometheus.CounterValue, s.WaitTime.Seconds())
	ch <- prometheus.MustNewConstMetric(descLimRate, prometheus.GaugeValue, s.Rate)
	ch <- prometheus.MustNewConstMetric(descLimThrottle, prometheus.CounterValue, float64(s.Throttled))
	ch <- prometheus.MustNewConstMetric(descLimPauses, prometheus.CounterValue, float64(s.Pauses))
	ch <- prometheus.MustNewConstMetric(descLimInProg, prometheus.GaugeValue, float64(s.InProgress))
	ch <- prometheus.MustNewConstMetric(descLimShare, prometheus.GaugeValue, s.Share)
}

// PendingSource tells how many orders wait on their end user in this
// member's partitions and since when the oldest waits (*pipeline.Follower).
type PendingSource interface {
	Stats() (pending int, oldest time.Time)
}

// WatchPending exports the orders waiting on their end user: how many, and
// how long the oldest has waited, with no per-subscriber label.
func (m *Metrics) WatchPending(src PendingSource) {
	m.reg.MustRegister(&pendingCollector{src: src})
}

var (
	descPending    = prometheus.NewDesc(ns+"_pending_orders", "Orders answered pending_user_action and still followed by this instance, until their subscriber leaves the pending state.", nil, nil)
	descPendingAge = prometheus.NewDesc(ns+"_pending_oldest_age_seconds", "How long the oldest order followed by this instance has waited on its end user (0: none).", nil, nil)
)

type pendingCollector struct{ src PendingSource }

func (c *pendingCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descPending
	ch <- descPendingAge
}

func (c *pendingCollector) Collect(ch chan<- prometheus.Metric) {
	n, oldest := c.src.Stats()
	age := 0.0
	if n > 0 {
		age = time.Since(oldest).Seconds()
	}
	ch <- prometheus.MustNewConstMetric(descPending, prometheus.GaugeValue, float64(n))
	ch <- prometheus.MustNewConstMetric(descPendingAge, prometheus.GaugeValue, age)
}
