package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/acme-sp/wholesale-provisioner/internal/sample"
	"github.com/acme-sp/wholesale-provisioner/producer"
	"github.com/acme-sp/wholesale-provisioner/provisioning"
	"github.com/acme-sp/wholesale-provisioner/schemas"
)

// fakeWebex is the follow-up's view of Webex: subscribers whose status a test
// sets, listed in pages of 100 with a next link, every list call counted.
type fakeWebex struct {
	mu        sync.Mutex
	subs      map[string]provisioning.Subscriber // by id
	changed   map[string]time.Time
	lists     int
	consents  map[string]int
	listErrOn int // fail the list call of this number (0: never)
}

func newFakeWebex() *fakeWebex {
	return &fakeWebex{subs: map[string]provisioning.Subscriber{}, changed: map[string]time.Time{}, consents: map[string]int{}}
}

func (w *fakeWebex) set(id, status string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.subs[id]
	s.ID, s.Status = id, status
	if status == provisioning.SubscriberProvisioned {
		s.PersonID = "person-" + id
	}
	w.subs[id], w.changed[id] = s, time.Now()
}

func (w *fakeWebex) listCalls() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.lists
}

func (w *fakeWebex) ListSubscribers(_ context.Context, f provisioning.ListFilter, next string) ([]provisioning.Subscriber, string, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.lists++
	if w.lists == w.listErrOn {
		return nil, "", fmt.Errorf("webex GET /wholesale/subscribers: 503 Service Unavailable")
	}
	offset := 0
	if next != "" {
		u, _ := url.Parse(next)
		offset, _ = strconv.Atoi(u.Query().Get("offset"))
	}
	var ids []string
	for id, at := range w.changed {
		if at.After(f.LastStatusChange) && (f.Status == "" || w.subs[id].Status == f.Status) {
			ids = append(ids, id)
		}
	}
	// A stable order across pages.
	sortStrings(ids)
	end := min(offset+provisioning.ListPageSize, len(ids))
	var page []provisioning.Subscriber
	for _, id := range ids[min(offset, end):end] {
		page = append(page, w.subs[id])
	}
	if end < len(ids) {
		return page, "https://webex.example/v1/wholesale/subscribers?offset=" + strconv.Itoa(end), nil
	}
	return page, "", nil
}

func (w *fakeWebex) SendConsentMove(_ context.Context, id string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.consents[id]++
	return nil
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// followEnv is a pipeline and its follower on an in-process broker.
type followEnv struct {
	t       *testing.T
	brokers []string
	p       *Pipeline
	f       *Follower
	webex   *fakeWebex
	pending map[string]string // order id -> subscriber id
	cancel  context.CancelFunc
	done    chan struct{}
}

const (
	fuOrders, fuOutcomes, fuDLT, fuTopic = "orders", "outcomes", "dlt", "followups"
)

func newFollowEnv(t *testing.T, cfg FollowUpConfig) *followEnv {
	t.Helper()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, fuOrders, fuTopic), kfake.SeedTopics(1, fuOutcomes, fuDLT))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	brokers := cluster.ListenAddrs()
	w, err := producer.NewWriter(producer.Config{Brokers: brokers, OutcomesTopic: fuOutcomes, DeadLetterTopic: fuDLT, FollowUpsTopic: fuTopic, BatchTimeout: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	e := &followEnv{t: t, brokers: brokers, webex: newFakeWebex(), pending: map[string]string{}, done: make(chan struct{})}
	cfg.Topic = fuTopic
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	pending := provisionerFunc(func(_ context.Context, o schemas.Order) (provisioning.Result, error) {
		id := "sub-" + o.OrderID
		e.webex.set(id, provisioning.SubscriberPendingUserMigration)
		return provisioning.Result{Status: schemas.StatusPendingUserAction, Attempts: 2,
			Subscriber: provisioning.Subscriber{ID: id, Status: provisioning.SubscriberPendingUserMigration, Packages: o.Packages}}, nil
	})
	e.p = New(Config{ConsumerGroup: "g", FollowUp: cfg, Logger: &log}, pending, w)
	e.f = NewFollower(e.p, brokers, nil, nil, e.webex)
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	go func() { defer close(e.done); _ = e.f.Run(ctx) }()
	t.Cleanup(e.stop)
	e.f.Assigned(1, []int{0, 1})
	return e
}

func (e *followEnv) stop() {
	e.cancel()
	<-e.done
}

// order hands one pending order of partition to the pipeline.
func (e *followEnv) order(i, partition int) schemas.Order {
	e.t.Helper()
	o := sample.Order("fu", i, time.Now())
	m := sample.Message(o)
	m.Topic, m.Partition, m.Offset, m.Time = fuOrders, partition, int64(i), time.Now()
	if err := e.p.Handle(context.Background(), m, nil); err != nil {
		e.t.Fatal(err)
	}
	e.pending[o.OrderID] = "sub-" + o.OrderID
	return o
}

// outcomes reads the outcomes topic until want records or the deadline.
func (e *followEnv) outcomes(want int, within time.Duration) []schemas.Outcome {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: e.brokers, Topic: fuOutcomes, MaxWait: 50 * time.Millisecond})
	defer r.Close()
	var out []schemas.Outcome
	for len(out) < want {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			break
		}
		var o schemas.Outcome
		if err := json.Unmarshal(m.Value, &o); err != nil {
			e.t.Fatal(err)
		}
		if err := schemas.ValidateOutcome(o); err != nil {
			e.t.Errorf("outcome breaks its schema: %v", err)
		}
		out = append(out, o)
	}
	return out
}

func waitPending(t *testing.T, f *Follower, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, _ := f.Stats()
		if n == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d orders followed, want %d", n, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestFollowUpAnswersThePendingOrderOnce: an order left pending gets its
// pending outcome at once, then, once its subscriber is provisioned, exactly
// one final outcome, with its own event id and the pending one's; its
// follow-up record is gone then.
func TestFollowUpAnswersThePendingOrderOnce(t *testing.T) {
	e := newFollowEnv(t, FollowUpConfig{SweepInterval: 50 * time.Millisecond, MaxSweepInterval: 100 * time.Millisecond})
	o := e.order(1, 1)
	waitPending(t, e.f, 1)
	time.Sleep(200 * time.Millisecond) // sweeps that find nothing
	e.webex.set("sub-"+o.OrderID, provisioning.SubscriberProvisioned)
	outs := e.outcomes(2, 10*time.Second)
	if len(outs) != 2 {
		t.Fatalf("%d outcomes, want the pending and the final one", len(outs))
	}
	pending, final := outs[0], outs[1]
	if pending.Status != schemas.StatusPendingUserAction || final.Status != schemas.StatusProvisioned {
		t.Fatalf("statuses %s then %s", pending.Status, final.Status)
	}
	if final.PendingEventID != pending.EventID || final.EventID != FinalEventID(pending.EventID) || final.EventID == pending.EventID ||
		final.Subscriber == nil || final.Subscriber.PersonID == "" || final.OrderID != o.OrderID {
		t.Errorf("final outcome %+v", final)
	}
	waitPending(t, e.f, 0)
	time.Sleep(300 * time.Millisecond)
	if more := e.outcomes(3, 300*time.Millisecond); len(more) != 2 {
		t.Errorf("%d outcomes after more sweeps, want still 2", len(more))
	}
}

// TestFollowUpSurvivesARestart: a new follower (another member, or this one
// after a crash) reads the follow-up topic and answers what the last one
// left, including a change that happened while none ran.
func TestFollowUpSurvivesARestart(t *testing.T) {
	e := newFollowEnv(t, FollowUpConfig{SweepInterval: 50 * time.Millisecond})
	o := e.order(2, 0)
	waitPending(t, e.f, 1)
	e.f.Revoked([]int{0, 1}, 0)
	e.stop()
	e.webex.set("sub-"+o.OrderID, provisioning.SubscriberError)

	f2 := NewFollower(e.p, e.brokers, nil, nil, e.webex)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = f2.Run(ctx) }()
	defer func() { cancel(); <-done }()
	f2.Assigned(1, []int{0, 1})
	outs := e.outcomes(2, 10*time.Second)
	if len(outs) != 2 || outs[1].Status != schemas.StatusFailed || outs[1].Failure.Reason != schemas.ReasonProvisioningError {
		t.Fatalf("outcomes %+v, want pending then failed (provisioning_error)", outs)
	}
}

// TestFollowUpDeadline: a subscriber that waits past the deadline ends its
// order failed, pending_timeout, with a dead letter of the original record.
func TestFollowUpDeadline(t *testing.T) {
	e := newFollowEnv(t, FollowUpConfig{SweepInterval: 50 * time.Millisecond, Deadline: 200 * time.Millisecond})
	e.order(3, 1)
	outs := e.outcomes(2, 10*time.Second)
	if len(outs) != 2 || outs[1].Status != schemas.StatusFailed || outs[1].Failure.Reason != schemas.ReasonPendingTimeout {
		t.Fatalf("outcomes %+v, want pending then failed (pending_timeout)", outs)
	}
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: e.brokers, Topic: fuDLT, MaxWait: 50 * time.Millisecond})
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m, err := r.ReadMessage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var d schemas.DeadLetter
	if err := json.Unmarshal(m.Value, &d); err != nil || d.Reason != string(schemas.ReasonPendingTimeout) || d.Step != schemas.StepFollowUp || d.Source.Topic != fuOrders {
		t.Errorf("dead letter %+v, %v", d, err)
	}
	if err := schemas.ValidateDeadLetter(d); err != nil {
		t.Error(err)
	}
}

// TestFollowUpIsCheapWhenMany: a thousand pending orders are followed with
// one list call per page of subscribers that changed, not one call per
// subscriber per sweep.
func TestFollowUpIsCheapWhenMany(t *testing.T) {
	const n = 1000
	e := newFollowEnv(t, FollowUpConfig{SweepInterval: 100 * time.Millisecond, MaxSweepInterval: 100 * time.Millisecond})
	var subs []string
	for i := range n {
		o := e.order(100+i, i%2)
		subs = append(subs, "sub-"+o.OrderID)
	}
	waitPending(t, e.f, n)
	idle0 := e.webex.listCalls()
	time.Sleep(time.Second) // ten sweeps with nothing resolved
	idle := e.webex.listCalls() - idle0
	for _, id := range subs {
		e.webex.set(id, provisioning.SubscriberProvisioned)
	}
	waitPending(t, e.f, 0)
	resolving := e.webex.listCalls() - idle0 - idle
	// An idle sweep makes two calls (provisioned, error), whatever waits; the
	// resolution takes one call per page of 100 in a sweep or two.
	if idle > 2*12 || resolving > 50 {
		t.Errorf("%d list calls while %d orders waited, %d while they resolved: want pages of %d, not one call per subscriber",
			idle, n, resolving, provisioning.ListPageSize)
	}
	t.Logf("%d pending orders: %d list calls in a second of idle sweeps every 100ms, %d to resolve them all", n, idle, resolving)
	if outs := e.outcomes(2*n, 20*time.Second); len(outs) != 2*n {
		t.Errorf("%d outcomes, want %d", len(outs), 2*n)
	}
}

// TestFollowUpStopsAtRevoke: once Revoked returns, no answer of those
// partitions goes out, whatever happens to their subscribers.
func TestFollowUpStopsAtRevoke(t *testing.T) {
	e := newFollowEnv(t, FollowUpConfig{SweepInterval: 50 * time.Millisecond})
	o := e.order(4, 0)
	waitPending(t, e.f, 1)
	e.f.Revoked([]int{0, 1}, 0)
	e.webex.set("sub-"+o.OrderID, provisioning.SubscriberProvisioned)
	time.Sleep(400 * time.Millisecond)
	if outs := e.outcomes(2, 500*time.Millisecond); len(outs) != 1 {
		t.Errorf("%d outcomes after the revoke, want only the pending one", len(outs))
	}
}

// TestFollowUpSendsTheConsentMoveOnce: with the reminder on, a subscriber
// still in pending_user_migration after the delay gets the consent move
// email once, and the record says so, so a restart does not send it again.
func TestFollowUpSendsTheConsentMoveOnce(t *testing.T) {
	e := newFollowEnv(t, FollowUpConfig{SweepInterval: 50 * time.Millisecond, MaxSweepInterval: 50 * time.Millisecond, ConsentMoveAfter: 100 * time.Millisecond})
	o := e.order(5, 1)
	id := "sub-" + o.OrderID
	deadline := time.Now().Add(10 * time.Second)
	for {
		fus, err := ReadFollowUps(context.Background(), e.brokers, nil, nil, fuTopic)
		if err != nil {
			t.Fatal(err)
		}
		if len(fus) == 1 && fus[0].ConsentMoveSentAt != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("follow-ups %+v: want the consent move recorded", fus)
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // more sweeps
	e.webex.mu.Lock()
	n := e.webex.consents[id]
	e.webex.mu.Unlock()
	if n != 1 {
		t.Errorf("%d consent move emails, want 1", n)
	}
}

// TestReadFollowUps: what `provisioner pending` shows is what is followed:
// the records written, less those answered.
func TestReadFollowUps(t *testing.T) {
	e := newFollowEnv(t, FollowUpConfig{SweepInterval: 50 * time.Millisecond})
	a, b := e.order(6, 0), e.order(7, 1)
	waitPending(t, e.f, 2)
	e.webex.set("sub-"+a.OrderID, provisioning.SubscriberProvisioned)
	waitPending(t, e.f, 1)
	fus, err := ReadFollowUps(context.Background(), e.brokers, nil, nil, fuTopic)
	if err != nil {
		t.Fatal(err)
	}
	if len(fus) != 1 || fus[0].OrderID != b.OrderID || fus[0].Subscriber.WebexStatus != provisioning.SubscriberPendingUserMigration {
		t.Errorf("follow-ups %+v, want only %s's", fus, b.OrderID)
	}
}
