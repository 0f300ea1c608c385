package reliability

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/acme-sp/wholesale-provisioner/consumer"
	"github.com/acme-sp/wholesale-provisioner/internal/pipeline"
	"github.com/acme-sp/wholesale-provisioner/producer"
	"github.com/acme-sp/wholesale-provisioner/provisioning"
	"github.com/acme-sp/wholesale-provisioner/provisioning/webexsim"
	"github.com/acme-sp/wholesale-provisioner/schemas"
)

// poisonProvisioner is the real workflow, except that it panics on the
// poisoned orders, before or after the subscriber is created.
type poisonProvisioner struct {
	wf     *provisioning.Workflow
	before map[string]string // order id → panic message, before any call
	after  map[string]string // order id → panic message, after the workflow
}

func (p poisonProvisioner) Run(ctx context.Context, o schemas.Order, wait provisioning.Wait) (provisioning.Result, error) {
	if msg, ok := p.before[o.OrderID]; ok {
		panic(msg)
	}
	res, err := p.wf.Run(ctx, o, wait)
	if msg, ok := p.after[o.OrderID]; ok {
		panic(fmt.Errorf("%s", msg))
	}
	return res, err
}

// TestPoisonRecord feeds orders that make the handler panic, on a
// one-partition topic so that orders follow them on the same partition. Each
// is caught, dead-lettered (handler_panic) with the panic message and answered
// with a failed outcome; the orders after it are answered; everything is
// committed. The App's wiring takes no other Provisioner, so the test wires
// the same parts (pipeline.New with the real writer, consumer.New on the real
// broker) around a workflow that panics.
func TestPoisonRecord(t *testing.T) {
	const n = 300
	t.Parallel()
	start := time.Now()
	e := newEnv(t, envConfig{partitions: 1, sim: webexsim.Config{Latency: 2 * time.Millisecond}})
	s := e.makeOrders(n, 0)
	poison := poisonProvisioner{before: map[string]string{}, after: map[string]string{}}
	for _, i := range []int{0, 100, 101, 299} { // the first, two in a row, the last
		id := s.ids[i]
		poison.before[id] = "poisoned order " + id + ": index out of range [7] with length 3"
		s.want[id] = schemas.StatusFailed
	}
	afterID := s.ids[200] // created at Webex, then the handler panics
	poison.after[afterID] = "poisoned order " + afterID + ": nil map write after provisioning"
	s.want[afterID] = schemas.StatusFailed

	cfg := e.appConfig()
	client, err := provisioning.NewClient(provisioning.ClientConfig{BaseURL: cfg.Client.BaseURL,
		Tokens: provisioning.StaticToken(simToken), RequestTimeout: cfg.Client.RequestTimeout})
	if err != nil {
		t.Fatal(err)
	}
	poison.wf = provisioning.NewWorkflow(client, provisioning.WorkflowConfig{
		RetryInitialInterval: cfg.Workflow.RetryInitialInterval, RetryMaxInterval: cfg.Workflow.RetryMaxInterval})
	w, err := producer.NewWriter(producer.Config{Brokers: e.brokers, OutcomesTopic: e.outs, DeadLetterTopic: e.dlt})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	log := zerolog.New(e.logs).With().Timestamp().Logger()
	p := pipeline.New(pipeline.Config{ConsumerGroup: e.group, Logger: &log}, poison, w)
	c, err := consumer.New(consumer.Config{Brokers: e.brokers, GroupID: e.group, Topic: e.orders,
		KeyFunc: pipeline.OrderKey, Logger: &log}, p)
	if err != nil {
		t.Fatal(err)
	}
	outs, dlq := e.collect(e.outs, true, 3), e.collect(e.dlt, false, 1)
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan struct{})
	var runErr error
	go func() { defer close(done); runErr = c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	e.publish(s.msgs)

	e.waitAnswered(outs, n)
	e.waitAnswered(dlq, len(poison.before)+len(poison.after))
	e.waitNoLag()
	cancel()
	<-done
	if runErr != nil {
		t.Errorf("consumer Run: %v", runErr)
	}

	redelivered, lost := e.checkOutcomes(outs, s)
	got, _ := outs.snapshot()
	_, dead := dlq.snapshot()
	for id, msg := range mergeMaps(poison.before, poison.after) {
		d := dead[id]
		if len(d) != 1 {
			t.Errorf("poisoned order %s: %d dead letters, want 1", id, len(d))
			continue
		}
		if v := d[0].Source.Value.Text; d[0].Reason != schemas.ReasonHandlerPanic || !strings.Contains(d[0].Message, msg) ||
			v == nil || *v != string(s.msgs[index(s.ids, id)].Value) {
			t.Errorf("dead letter of %s: reason %q, message %q; want %s with the panic message %q and the original record",
				id, d[0].Reason, d[0].Message, schemas.ReasonHandlerPanic, msg)
		}
		if f := got[id][0].Failure; f == nil || !strings.Contains(f.Message, msg) {
			t.Errorf("outcome of %s: failure %+v, want the panic message", id, f)
		}
	}
	for id := range dead {
		if _, ok := mergeMaps(poison.before, poison.after)[id]; !ok {
			t.Errorf("dead letter for %s, which did not panic", id)
		}
	}
	// The panic after the create left a subscriber behind; the order is
	// dead-lettered for a person to look at, and nothing was created twice.
	e.checkCreates(n - len(poison.before))
	records, answered := outs.count()
	deadRecords, _ := dlq.count()
	figures{orders: n, faults: fmt.Sprintf("%d records make the handler panic (before the API calls, and after the create)", len(poison.before)+len(poison.after)),
		outcomes: records, answered: answered, redelivered: redelivered, deadLetters: deadRecords,
		duplicates: e.sim.Stats().EmailsCreatedMoreThanOnce, lost: lost, took: time.Since(start)}.log(t)
}

func index(ids []string, id string) int {
	for i, v := range ids {
		if v == id {
			return i
		}
	}
	return -1
}

func mergeMaps(a, b map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}
