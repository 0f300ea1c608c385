package main

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/acme-sp/wholesale-provisioner/internal/app"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/acme-sp/wholesale-provisioner/consumer"
	"github.com/acme-sp/wholesale-provisioner/internal/sample"
	"github.com/acme-sp/wholesale-provisioner/producer"
	"github.com/acme-sp/wholesale-provisioner/provisioning/webexsim"
	"github.com/acme-sp/wholesale-provisioner/schemas"
)

// demoCmd is `provisioner demo`: the whole flow in one process, on an in-process
// Kafka-protocol broker (kfake) and the Webex simulator.
func demoCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		orders     = 100
		partitions = 3
		timeout    = 2 * time.Minute
		logFile    string
		verbose    bool
	)
	sim := webexsim.Config{
		Latency:                20 * time.Millisecond,
		LatencyJitter:          20 * time.Millisecond,
		ProvisioningDelay:      100 * time.Millisecond,
		PrecheckRejectDomain:   sample.RejectDomain,
		PendingMigrationDomain: sample.PendingDomain,
		ErrorDomain:            sample.ErrorDomain,
		Faults:                 webexsim.FaultRates{Status429: 0.03, Status503: 0.03, LostResponse: 0.05},
		RetryAfter:             time.Second,
	}
	fs := newFlagSet("demo", "Run the whole flow in-process: an in-process Kafka broker, the Webex simulator and the\n"+
		"provisioner. Publishes sample orders (good ones, a precheck rejection, a pending migration, a\n"+
		"duplicate, a redelivery, malformed records), shows progress, and prints a summary.", stderr)
	fs.IntVar(&orders, "orders", orders, "number of valid orders to publish (at least 8)")
	fs.IntVar(&partitions, "partitions", partitions, "partitions of the orders topic")
	fs.DurationVar(&timeout, "timeout", timeout, "give up if the orders are not all answered by then")
	fs.StringVar(&logFile, "log-file", "", "where the provisioner's JSON logs go (default: a file in the temp dir)")
	fs.BoolVar(&verbose, "verbose", false, "also write the provisioner's logs to stderr")
	bindSimFlags(fs, &sim)
	if err := parse(fs, args, osLookupEnv); err != nil {
		return usageError{err}
	}
	if orders < 8 {
		return usageError{fmt.Errorf("--orders must be at least 8 (the demo's special cases need them), not %d", orders)}
	}
	if partitions < 1 {
		return usageError{fmt.Errorf("--partitions must be at least 1, not %d", partitions)}
	}
	if err := sim.Validate(); err != nil {
		return usageError{fmt.Errorf("simulator settings: %w", err)}
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	started := time.Now()

	// Logs go to a file so that the progress display stays readable.
	if logFile == "" {
		logFile = filepath.Join(os.TempDir(), fmt.Sprintf("provisioner-demo-%d.log", os.Getpid()))
	}
	lf, err := os.Create(logFile)
	if err != nil {
		return fmt.Errorf("creating the log file: %w", err)
	}
	defer lf.Close()
	var logOut io.Writer = lf
	if verbose {
		logOut = io.MultiWriter(lf, stderr)
	}
	log := app.NewLogger(logOut, "info", "json")

	cfg := app.DefaultConfig()
	cluster, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.SeedTopics(int32(partitions), cfg.OrdersTopic),
		kfake.SeedTopics(1, cfg.OutcomesTopic, cfg.DeadLetterTopic),
	)
	if err != nil {
		return fmt.Errorf("starting the in-process Kafka broker: %w", err)
	}
	defer cluster.Close()

	simServer := webexsim.New(sim)
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("listening for the Webex simulator: %w", err)
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
	if err := cfg.Validate(); err != nil {
		return err
	}
	app, err := app.New(context.Background(), cfg, log)
	if err != nil {
		return err
	}
	defer app.Close()
	appCtx, stopApp := context.WithCancel(ctx)
	defer stopApp()
	appDone := make(chan error, 1)
	go func() { appDone <- app.Run(appCtx) }()

	records, plan := demoRecords(orders)
	fmt.Fprintf(stdout, "Demo: %d records (%d valid orders, %d special, %d malformed) into %d partitions; "+
		"Webex simulator latency %s+%s, faults 429 %.0f%% / 503 %.0f%% / lost answer %.0f%%.\n",
		len(records), orders, plan.special, plan.malformed, partitions, sim.Latency, sim.LatencyJitter,
		100*sim.Faults.Status429, 100*sim.Faults.Status503, 100*sim.Faults.LostResponse)
	if err := publish(ctx, cfg.Brokers, cfg.OrdersTopic, records); err != nil {
		return err
	}

	obs := newObserver(cfg.Brokers, cfg.OutcomesTopic, cfg.DeadLetterTopic)
	obsCtx, stopObs := context.WithCancel(ctx)
	defer stopObs()
	obs.start(obsCtx, &wg)
	if err := obs.wait(ctx, plan, stderr); err != nil {
		return fmt.Errorf("%w (logs: %s)", err, logFile)
	}
	lag, err := waitNoLag(ctx, cfg)
	stopApp()
	<-appDone
	stopObs()
	if err != nil {
		return fmt.Errorf("checking committed offsets: %w", err)
	}
	return obs.summary(stdout, simServer.Stats(), lag, time.Since(started), logFile)
}

// demoPlan says what the demo expects back.
type demoPlan struct {
	outcomes  int // outcome events expected (one per identifiable record)
	noOrderID int // dead letters of records whose order id cannot be read
	special   int
	malformed int
}

func demoRecords(n int) ([]kafka.Message, demoPlan) {
	runID := fmt.Sprintf("demo%d", time.Now().Unix()%100000)
	now := time.Now()
	var msgs []kafka.Message
	var first, second kafka.Message
	for i := 0; i < n; i++ {
		o := sample.Order(runID, i, now)
		switch i {
		case 3:
			o = sample.WithDomain(o, "rejected", sample.RejectDomain)
		case 5:
			o = sample.WithDomain(o, "pending", sample.PendingDomain)
		case 7:
			o = sample.WithDomain(o, "error", sample.ErrorDomain)
		}
		m := sample.Message(o)
		if i == 0 {
			first = m
		}
		if i == 1 {
			second = m
		}
		msgs = append(msgs, m)
	}
	// A second order for subscriber 0 (already provisioned by then: same key, same
	// partition, later offset), and order 1 delivered twice, as a retrying
	// billing system would.
	var again schemas.Order
	_ = json.Unmarshal(first.Value, &again)
	again.OrderID += "-again"
	msgs = append(msgs, sample.Message(again), second)
	plan := demoPlan{outcomes: n + 2, special: 5}
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

func publish(ctx context.Context, brokers []string, topic string, msgs []kafka.Message) error {
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
	brokers            []string
	outcomes, dlqTopic string

	mu       sync.Mutex
	got      []schemas.Outcome
	dead     []schemas.DeadLetter
	deadHdrs []map[string]string
	err      error
}

func newObserver(brokers []string, outcomes, dlq string) *observer {
	return &observer{brokers: brokers, outcomes: outcomes, dlqTopic: dlq}
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
	wg.Add(2)
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

// counts returns outcomes seen, dead letters seen, and dead letters expected so far.
func (o *observer) counts(plan demoPlan) (int, int, int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	failed := 0
	for _, out := range o.got {
		if out.Status == schemas.StatusFailed {
			failed++
		}
	}
	return len(o.got), len(o.dead), failed + plan.noOrderID
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

// waitNoLag waits until the group's committed offsets reach the end of every
// partition: the commit follows the outcome by a moment.
func waitNoLag(ctx context.Context, cfg app.Config) ([]consumer.PartitionLag, error) {
	c := &kafka.Client{Addr: kafka.TCP(cfg.Brokers...), Timeout: 5 * time.Second}
	for {
		lag, err := consumer.Lag(ctx, c, cfg.GroupID, cfg.OrdersTopic)
		if err == nil && totalLag(lag) == 0 {
			return lag, nil
		}
		select {
		case <-ctx.Done():
			if err == nil {
				err = fmt.Errorf("lag still %d", totalLag(lag))
			}
			return lag, err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func totalLag(ls []consumer.PartitionLag) int64 {
	var n int64
	for _, l := range ls {
		n += l.Lag
	}
	return n
}

func (o *observer) summary(w io.Writer, st webexsim.Stats, lag []consumer.PartitionLag, took time.Duration, logFile string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	type row struct{ status, reason string }
	rows := map[row]int{}
	ids := map[string]bool{}
	for _, out := range o.got {
		ids[out.EventID] = true
		r := row{status: string(out.Status)}
		switch {
		case out.Failure != nil:
			r.reason = string(out.Failure.Reason)
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
	fmt.Fprintf(tw, "total\t%d outcome events, %d distinct event ids\t%d\n", len(o.got), len(ids), len(o.got))
	tw.Flush()

	dead := map[string]int{}
	example := map[string]string{}
	missingHdr := 0
	for i, d := range o.dead {
		k := d.Reason + "\t" + d.ErrorClass + "\t" + d.Step
		dead[k]++
		if _, ok := example[k]; !ok {
			example[k] = d.Message
		}
		for _, h := range []string{producer.HeaderDLTTopic, producer.HeaderDLTPartition, producer.HeaderDLTOffset, producer.HeaderDLTErrorClass, producer.HeaderDLTErrorMessage} {
			if _, ok := o.deadHdrs[i][h]; !ok {
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
	fmt.Fprintf(w, "\nWebex simulator: %d API calls (%d answered 429/5xx or reset), %d subscribers created, at most %d per email.\n",
		st.Requests, faults, st.Creates, st.MaxCreatesPerEmail)
	fmt.Fprintf(w, "Kafka: committed offsets %d = end offsets %d on all %d partitions (lag 0); dead letters carry context headers: %v.\n",
		committed, end, len(lag), missingHdr == 0)
	fmt.Fprintf(w, "Took %s. Structured logs (emails masked): %s\n", took.Round(10*time.Millisecond), logFile)
	switch {
	case st.MaxCreatesPerEmail > 1:
		return fmt.Errorf("a subscriber was created %d times", st.MaxCreatesPerEmail)
	case missingHdr > 0:
		return fmt.Errorf("%d dead-letter context headers missing", missingHdr)
	}
	return o.err
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
