// Package demo runs the whole flow in one process, on an in-process Kafka
// broker and the Webex simulator, and reports what came back downstream.
package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/acme-sp/wholesale-provisioner/consumer"
	"github.com/acme-sp/wholesale-provisioner/internal/app"
	"github.com/acme-sp/wholesale-provisioner/internal/sample"
	"github.com/acme-sp/wholesale-provisioner/producer"
	"github.com/acme-sp/wholesale-provisioner/provisioning/webexsim"
	"github.com/acme-sp/wholesale-provisioner/schemas"
)

// Options shape a demo run. The zero value of each field selects the default
// given in its comment.
type Options struct {
	// Orders is the number of valid orders published, at least MinOrders. Default 100.
	Orders int
	// Partitions of the orders topic. Default 3.
	Partitions int
	// Sim configures the Webex simulator. Default: DefaultSim.
	Sim *webexsim.Config
	// Log receives the provisioner's logs. Default: none.
	Log zerolog.Logger
	// Progress, when set, is told how far the answers are (a bar on a terminal).
	Progress io.Writer
}

// MinOrders is the fewest valid orders a demo publishes: its special cases need them.
const MinOrders = 8

// DefaultSim is the simulator of a demo: some latency, asynchronous
// provisioning, a few faults, and the domains that reject, wait and fail.
func DefaultSim() webexsim.Config {
	return webexsim.Config{
		Latency:                20 * time.Millisecond,
		LatencyJitter:          20 * time.Millisecond,
		ProvisioningDelay:      100 * time.Millisecond,
		PrecheckRejectDomain:   sample.RejectDomain,
		PendingMigrationDomain: sample.PendingDomain,
		ErrorDomain:            sample.ErrorDomain,
		AcceptDomain:           sample.AcceptDomain,
		PendingResolveDelay:    500 * time.Millisecond,
		UpdateDelay:            100 * time.Millisecond,
		// A new enterprise takes a while: its subscribers wait for it.
		CustomerProvisioningDelay: time.Second,
		Faults:                    webexsim.FaultRates{Status429: 0.03, Status503: 0.03, LostResponse: 0.05, LostResponseAll: true},
		RetryAfter:                time.Second,
	}
}

func (o *Options) setDefaults() {
	if o.Orders == 0 {
		o.Orders = 100
	}
	if o.Partitions == 0 {
		o.Partitions = 3
	}
	if o.Sim == nil {
		s := DefaultSim()
		o.Sim = &s
	}
}

// Validate reports the first setting out of range.
func (o Options) Validate() error {
	o.setDefaults()
	switch {
	case o.Orders < MinOrders:
		return fmt.Errorf("--orders must be at least %d (the demo's special cases need them), not %d", MinOrders, o.Orders)
	case o.Partitions < 1:
		return fmt.Errorf("--partitions must be at least 1, not %d", o.Partitions)
	}
	if err := o.Sim.Validate(); err != nil {
		return fmt.Errorf("simulator settings: %w", err)
	}
	return nil
}

// Report is what came back: every outcome and dead letter downstream read,
// the simulator's counters, the group's lag at the end.
type Report struct {
	Records, Malformed, Special int
	// Members are the subscriber orders of the customer the demo onboards.
	Members  int
	Outcomes []schemas.Outcome
	// CustomerOutcomes are the customer outcome events read back.
	CustomerOutcomes []schemas.CustomerOutcome
	DeadLetters      []schemas.DeadLetter
	// DeadLetterHeaders are the headers of each dead letter, by name.
	DeadLetterHeaders []map[string]string
	Sim               webexsim.Stats
	Lag               []consumer.PartitionLag
	Took              time.Duration
}

// Describe says in one line what the demo publishes into what.
func (o Options) Describe() string {
	o.setDefaults()
	records, plan := demoRecords(o.Orders)
	return fmt.Sprintf("Demo: a new customer and its %d subscribers, then %d records (%d valid orders, %d special, %d malformed) into %d partitions; "+
		"Webex simulator latency %s+%s, faults 429 %.0f%% / 503 %.0f%% / lost answer %.0f%%.",
		plan.members, len(records), o.Orders, plan.special, plan.malformed, o.Partitions, o.Sim.Latency, o.Sim.LatencyJitter,
		100*o.Sim.Faults.Status429, 100*o.Sim.Faults.Status503, 100*o.Sim.Faults.LostResponse)
}

// Run starts a broker, the simulator and the provisioner, publishes the
// demo's records, waits until every one is answered and committed (or ctx
// ends), and reports what came back.
func Run(ctx context.Context, o Options) (Report, error) {
	if err := o.Validate(); err != nil {
		return Report{}, err
	}
	o.setDefaults()
	started := time.Now()
	cfg := app.DefaultConfig()
	cluster, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.SeedTopics(int32(o.Partitions), cfg.OrdersTopic),
		kfake.SeedTopics(1, cfg.OutcomesTopic, cfg.DeadLetterTopic, cfg.CustomerOrdersTopic, cfg.CustomerOutcomesTopic),
	)
	if err != nil {
		return Report{}, fmt.Errorf("starting the in-process Kafka broker: %w", err)
	}
	defer cluster.Close()

	simServer := webexsim.New(*o.Sim)
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return Report{}, fmt.Errorf("listening for the Webex simulator: %w", err)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	simCtx, stopSim := context.WithCancel(context.WithoutCancel(ctx))
	defer stopSim()
	wg.Add(1)
	go func() { defer wg.Done(); _ = webexsim.Serve(simCtx, ln, simServer) }()

	cfg.Brokers = cluster.ListenAddrs()
	cfg.Client.BaseURL = simServer.BaseURL("http://" + ln.Addr().String())
	cfg.WebexToken = "demo-token"
	cfg.Client.RequestTimeout = 5 * time.Second
	cfg.Workflow.RetryInitialInterval = 100 * time.Millisecond
	cfg.Workflow.RetryMaxInterval = 2 * time.Second
	cfg.Workflow.RetryMaxElapsed = 30 * time.Second
	cfg.Workflow.StatusPollInterval = 100 * time.Millisecond
	cfg.Workflow.StatusMaxWait = 30 * time.Second
	cfg.Workflow.CustomerPollInterval = 200 * time.Millisecond
	cfg.Pipeline.FollowUp.SweepInterval, cfg.Pipeline.FollowUp.MaxSweepInterval = 200*time.Millisecond, 400*time.Millisecond
	if err := cfg.Validate(); err != nil {
		return Report{}, err
	}
	a, err := app.New(ctx, cfg, o.Log)
	if err != nil {
		return Report{}, err
	}
	defer a.Close()
	appCtx, stopApp := context.WithCancel(ctx)
	defer stopApp()
	appDone := make(chan error, 1)
	go func() { appDone <- a.Run(appCtx) }()

	records, plan := demoRecords(o.Orders)
	// The customer order and its members go out together, as a billing
	// system onboarding an enterprise sends them.
	if err := Publish(ctx, cfg.Brokers, cfg.CustomerOrdersTopic, []kafka.Message{sample.CustomerMessage(plan.customer)}); err != nil {
		return Report{}, err
	}
	if err := Publish(ctx, cfg.Brokers, cfg.OrdersTopic, records); err != nil {
		return Report{}, err
	}
	obs := newObserver(cfg.Brokers, cfg.OutcomesTopic, cfg.DeadLetterTopic, cfg.CustomerOutcomesTopic)
	obsCtx, stopObs := context.WithCancel(ctx)
	defer stopObs()
	obs.start(obsCtx, &wg)
	progress := o.Progress
	if progress == nil {
		progress = io.Discard
	}
	if err := obs.wait(ctx, plan, progress); err != nil {
		return Report{}, err
	}
	kc := &kafka.Client{Addr: kafka.TCP(cfg.Brokers...), Timeout: 5 * time.Second}
	lag, err := consumer.WaitCaughtUp(ctx, kc, cfg.GroupID, cfg.OrdersTopic)
	if err == nil {
		var clag []consumer.PartitionLag
		clag, err = consumer.WaitCaughtUp(ctx, kc, cfg.CustomerGroupID(), cfg.CustomerOrdersTopic)
		lag = append(lag, clag...)
	}
	stopApp()
	<-appDone
	stopObs()
	if err != nil {
		return Report{}, fmt.Errorf("checking committed offsets: %w", err)
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	return Report{Records: len(records), Malformed: plan.malformed, Special: plan.special, Members: plan.members,
		Outcomes: obs.got, CustomerOutcomes: obs.customers, DeadLetters: obs.dead, DeadLetterHeaders: obs.deadHdrs,
		Sim: simServer.Stats(), Lag: lag, Took: time.Since(started)}, obs.err
}

// demoPlan says what the demo expects back.
type demoPlan struct {
	outcomes  int // outcome events expected (one per identifiable record)
	noOrderID int // dead letters of records whose order id cannot be read
	special   int
	malformed int
	// customer is the customer order the demo onboards; members are its
	// subscriber orders, published with it.
	customer schemas.CustomerOrder
	members  int
}

// demoMembers is how many subscribers the demo's new customer has.
const demoMembers = 5

func demoRecords(n int) ([]kafka.Message, demoPlan) {
	runID := fmt.Sprintf("demo%d", time.Now().Unix()%100000)
	now := time.Now()
	var msgs []kafka.Message
	customer := sample.Customer(runID, 1, "", now)
	for i := range demoMembers {
		msgs = append(msgs, sample.Message(sample.Member(customer, i, now)))
	}
	var first, sixth schemas.Order
	var secondMsg kafka.Message
	for i := 0; i < n; i++ {
		o := sample.Order(runID, i, now)
		switch i {
		case 3:
			o = sample.WithDomain(o, "rejected", sample.RejectDomain)
		case 4:
			o = sample.WithDomain(o, "accepts", sample.AcceptDomain)
		case 5:
			o = sample.WithDomain(o, "pending", sample.PendingDomain)
		case 7:
			o = sample.WithDomain(o, "error", sample.ErrorDomain)
		}
		m := sample.Message(o)
		switch i {
		case 0:
			first = o
		case 1:
			secondMsg = m
		case 6:
			sixth = o
		}
		msgs = append(msgs, m)
	}
	// A second order for subscriber 0 (already provisioned by then: same key,
	// same partition, later offset); order 1 delivered twice, as a retrying
	// billing system would; subscriber 6 updated, then removed; an update and
	// a remove of a subscriber nobody provisioned.
	again := first
	again.OrderID += "-again"
	ghost := sample.Order(runID+"-ghost", 0, now)
	msgs = append(msgs, sample.Message(again), secondMsg,
		sample.Message(sample.Update(sixth, "upd", "webex_suite", now)), sample.Message(sample.Remove(sixth, "rm", now)),
		sample.Message(sample.Update(ghost, "upd", "webex_suite", now)), sample.Message(sample.Remove(ghost, "rm", now)))
	// Every order answered, and the one whose user accepts answered again.
	plan := demoPlan{outcomes: n + 6 + 1 + demoMembers + 1, special: 9, customer: customer, members: demoMembers}
	for _, m := range sample.MalformedRecords(runID) {
		msgs = append(msgs, kafka.Message{Key: []byte("malformed/" + m.Name), Value: m.Value})
		plan.malformed++
		if m.OrderID != "" {
			plan.outcomes++
		} else {
			plan.noOrderID++
		}
	}
	return msgs, plan
}

// Publish writes msgs to topic with acks=all and the murmur2 partitioner on
// their keys, as a billing system would.
func Publish(ctx context.Context, brokers []string, topic string, msgs []kafka.Message) error {
	w := &kafka.Writer{
		Addr:         kafka.TCP(brokers...),
		Topic:        topic,
		Balancer:     kafka.Murmur2Balancer{Consistent: true},
		RequiredAcks: kafka.RequireAll,
		BatchTimeout: 5 * time.Millisecond,
	}
	defer w.Close()
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		return fmt.Errorf("publishing the sample orders: %w", err)
	}
	return nil
}

// observer reads the outcome and dead-letter topics, as a downstream system would.
type observer struct {
	brokers                           []string
	outcomes, dlqTopic, customerTopic string

	mu        sync.Mutex
	got       []schemas.Outcome
	customers []schemas.CustomerOutcome
	dead      []schemas.DeadLetter
	deadHdrs  []map[string]string
	err       error
}

func newObserver(brokers []string, outcomes, dlq, customerOutcomes string) *observer {
	return &observer{brokers: brokers, outcomes: outcomes, dlqTopic: dlq, customerTopic: customerOutcomes}
}

func (o *observer) start(ctx context.Context, wg *sync.WaitGroup) {
	read := func(topic string, add func(kafka.Message) error) {
		defer wg.Done()
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: o.brokers, Topic: topic, Partition: 0, MaxWait: 100 * time.Millisecond})
		defer r.Close()
		for {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				return
			}
			if err := add(m); err != nil {
				o.mu.Lock()
				o.err = err
				o.mu.Unlock()
			}
		}
	}
	wg.Add(3)
	go read(o.customerTopic, func(m kafka.Message) error {
		var out schemas.CustomerOutcome
		if err := json.Unmarshal(m.Value, &out); err != nil {
			return fmt.Errorf("customer outcome at offset %d is not JSON: %w", m.Offset, err)
		}
		o.mu.Lock()
		o.customers = append(o.customers, out)
		o.mu.Unlock()
		return nil
	})
	go read(o.outcomes, func(m kafka.Message) error {
		var out schemas.Outcome
		if err := json.Unmarshal(m.Value, &out); err != nil {
			return fmt.Errorf("outcome at offset %d is not JSON: %w", m.Offset, err)
		}
		o.mu.Lock()
		o.got = append(o.got, out)
		o.mu.Unlock()
		return nil
	})
	go read(o.dlqTopic, func(m kafka.Message) error {
		var d schemas.DeadLetter
		if err := json.Unmarshal(m.Value, &d); err != nil {
			return fmt.Errorf("dead letter at offset %d is not JSON: %w", m.Offset, err)
		}
		hs := map[string]string{}
		for _, h := range m.Headers {
			hs[h.Key] = string(h.Value)
		}
		o.mu.Lock()
		o.dead = append(o.dead, d)
		o.deadHdrs = append(o.deadHdrs, hs)
		o.mu.Unlock()
		return nil
	})
}

// counts returns outcomes seen (the customer's among them), dead letters
// seen, and dead letters expected so far.
func (o *observer) counts(plan demoPlan) (int, int, int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	failed := 0
	for _, out := range o.customers {
		if out.Status == schemas.StatusFailed {
			failed++
		}
	}
	for _, out := range o.got {
		if out.Status == schemas.StatusFailed {
			failed++
		}
	}
	return len(o.got) + len(o.customers), len(o.dead), failed + plan.noOrderID
}

func (o *observer) wait(ctx context.Context, plan demoPlan, progress io.Writer) error {
	tty := isTerminal(progress)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	lastLine := time.Time{}
	for {
		got, dead, wantDead := o.counts(plan)
		done := got >= plan.outcomes && dead >= wantDead
		switch {
		case tty:
			const width = 30
			filled := width * min(got, plan.outcomes) / plan.outcomes
			fmt.Fprintf(progress, "\r[%s%s] %d/%d outcomes, %d dead letters ", strings.Repeat("#", filled), strings.Repeat(".", width-filled), got, plan.outcomes, dead)
			if done {
				fmt.Fprintln(progress)
			}
		case done || time.Since(lastLine) >= 2*time.Second:
			fmt.Fprintf(progress, "progress: %d/%d outcomes, %d dead letters\n", got, plan.outcomes, dead)
			lastLine = time.Now()
		}
		if done {
			return o.err
		}
		select {
		case <-ctx.Done():
			if tty {
				fmt.Fprintln(progress)
			}
			return fmt.Errorf("timed out with %d of %d outcomes and %d of %d dead letters", got, plan.outcomes, dead, wantDead)
		case <-tick.C:
		}
	}
}

// WriteSummary writes the report's tables and totals, naming logFile, and
// returns an error when something went wrong that the tables show: a
// subscriber created twice, a dead letter without its context.
func (r Report) WriteSummary(w io.Writer, logFile string) error {
	o, st, lag, took := r, r.Sim, r.Lag, r.Took
	type row struct{ status, reason string }
	rows := map[row]int{}
	ids := map[string]bool{}
	for _, out := range o.Outcomes {
		ids[out.EventID] = true
		r := row{status: string(out.Status)}
		switch {
		case out.Failure != nil && out.PendingEventID != "":
			r.reason = string(out.Failure.Reason) + ", after waiting on the user"
		case out.Failure != nil:
			r.reason = string(out.Failure.Reason)
		case out.PendingEventID != "":
			r.reason = "after the user accepted (it was pending_user_action)"
		case out.Changed != nil && *out.Changed:
			r.reason = "package changed"
		case out.Changed != nil:
			r.reason = "had the package already"
		case out.AlreadyAbsent:
			r.reason = "was gone already"
		case out.Status == schemas.StatusRemoved:
			r.reason = "removed"
		case out.Subscriber != nil && out.Subscriber.AlreadyExisted:
			r.reason = "existed before the order, found by lookup"
		case out.Subscriber != nil && out.Subscriber.FoundByLookup:
			r.reason = "created by this order (a redelivery or a lost answer), found by lookup"
		case out.Subscriber != nil && out.Status == schemas.StatusPendingUserAction:
			r.reason = "webex status " + out.Subscriber.WebexStatus
		default:
			r.reason = "created"
		}
		rows[r]++
	}
	keys := make([]row, 0, len(rows))
	for k := range rows {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].status != keys[j].status {
			return keys[i].status > keys[j].status
		}
		return keys[i].reason < keys[j].reason
	})
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\nOUTCOME\tREASON\tORDERS")
	for _, k := range keys {
		fmt.Fprintf(tw, "%s\t%s\t%d\n", k.status, k.reason, rows[k])
	}
	fmt.Fprintf(tw, "total\t%d outcome events, %d distinct event ids\t%d\n", len(o.Outcomes), len(ids), len(o.Outcomes))
	tw.Flush()

	dead := map[string]int{}
	example := map[string]string{}
	missingHdr := 0
	for i, d := range o.DeadLetters {
		k := d.Reason + "\t" + d.ErrorClass + "\t" + d.Step
		dead[k]++
		if _, ok := example[k]; !ok {
			example[k] = d.Message
		}
		for _, h := range []string{producer.HeaderDLTTopic, producer.HeaderDLTPartition, producer.HeaderDLTOffset, producer.HeaderDLTErrorClass, producer.HeaderDLTErrorMessage} {
			if _, ok := o.DeadLetterHeaders[i][h]; !ok {
				missingHdr++
			}
		}
	}
	dk := make([]string, 0, len(dead))
	for k := range dead {
		dk = append(dk, k)
	}
	sort.Strings(dk)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\nDEAD LETTER REASON\tCLASS\tSTEP\tRECORDS\tEXAMPLE")
	for _, k := range dk {
		fmt.Fprintf(tw, "%s\t%d\t%s\n", k, dead[k], clip(example[k], 70))
	}
	tw.Flush()

	var end, committed int64
	for _, l := range lag {
		end += l.End
		committed += l.Committed
	}
	var faults int64
	for _, byStatus := range st.Calls {
		for code, n := range byStatus {
			if code == 0 || code == 429 || code >= 500 {
				faults += n
			}
		}
	}
	var problems []error
	for _, c := range o.CustomerOutcomes {
		members := 0
		for _, out := range o.Outcomes {
			if out.CustomerExternalID == c.ExternalID && out.Status == schemas.StatusProvisioned {
				members++
			}
		}
		org := ""
		if c.Customer != nil {
			org = ", org " + c.Customer.OrgID
		}
		fmt.Fprintf(w, "\nNew customer %s: %s%s; %d of its %d subscribers provisioned, having waited for it.\n", c.ExternalID, c.Status, org, members, o.Members)
		if members != o.Members {
			problems = append(problems, fmt.Errorf("%d of the new customer's %d subscribers were provisioned", members, o.Members))
		}
	}
	fmt.Fprintf(w, "\nWebex simulator: %d API calls (%d answered 429/5xx or reset), %d subscribers created, at most %d per email.\n",
		st.Requests, faults, st.Creates, st.MaxCreatesPerEmail)
	fmt.Fprintf(w, "Kafka: committed offsets %d = end offsets %d on all %d partitions (lag 0); dead letters carry context headers: %v.\n",
		committed, end, len(lag), missingHdr == 0)
	fmt.Fprintf(w, "Took %s. Structured logs (emails masked): %s\n", took.Round(10*time.Millisecond), logFile)
	if st.MaxCreatesPerEmail > 1 {
		problems = append(problems, fmt.Errorf("a subscriber was created %d times", st.MaxCreatesPerEmail))
	}
	if missingHdr > 0 {
		problems = append(problems, fmt.Errorf("%d dead-letter context headers missing", missingHdr))
	}
	return errors.Join(problems...)
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
