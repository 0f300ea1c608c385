package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/acme-sp/wholesale-provisioner/internal/sample"
	"github.com/acme-sp/wholesale-provisioner/producer"
)

// orderSet is the orders of one trial. Order i is for subscriber i mod keys and
// keyed by it (customerId/email), so that orders sharing a key are for one
// subscriber, as they would be from a billing system; each has its own order id.
// It is safe for concurrent use.
type orderSet struct {
	runID string
	n     int
	keys  int
	// producedAt holds each order's publication time in Unix milliseconds (its
	// record's timestamp and its occurredAt), 0 until it is published.
	producedAt []atomic.Int64
}

// newOrderSet returns the first n orders of run runID over keys keys: the
// trials of one repeat share runID, so that they get the same orders.
func newOrderSet(runID string, n, keys int) *orderSet {
	return &orderSet{runID: runID, n: n, keys: max(1, keys), producedAt: make([]atomic.Int64, n)}
}

// newRunID returns a short random id for the orders of one repeat.
func newRunID() string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return "b" + hex.EncodeToString(b[:])
}

// orderID returns the id of order i.
func (s *orderSet) orderID(i int) string {
	return s.runID + "-o" + strconv.Itoa(i)
}

// index returns the number of the order with that id, if it is one of the set.
func (s *orderSet) index(orderID string) (int, bool) {
	rest, ok := strings.CutPrefix(orderID, s.runID+"-o")
	if !ok {
		return 0, false
	}
	i, err := strconv.Atoi(rest)
	if err != nil || i < 0 || i >= s.n {
		return 0, false
	}
	return i, true
}

// message returns the record of order i published at at. Besides the sample
// headers it carries an order-id header, which the kafka pipe copies through.
func (s *orderSet) message(i int, at time.Time) kafka.Message {
	o := sample.Order(s.runID, i%s.keys, at)
	o.OrderID = s.orderID(i)
	m := sample.Message(o)
	m.Time = at
	m.Headers = append(m.Headers, kafka.Header{Key: producer.HeaderOrderID, Value: []byte(o.OrderID)})
	return m
}

// publishChunk is how many orders one write carries.
const publishChunk = 2000

// publisher writes a trial's orders to its orders topic with acks=all,
// partitioned like the Java client (murmur2 on the key). Its writer has its own
// transport, so that the service under test never shares its connections.
type publisher struct {
	w   *kafka.Writer
	set *orderSet
}

func newPublisher(addrs []string, topic string, set *orderSet) *publisher {
	return &publisher{set: set, w: &kafka.Writer{
		Addr:         kafka.TCP(addrs...),
		Topic:        topic,
		Balancer:     kafka.Murmur2Balancer{Consistent: true},
		RequiredAcks: kafka.RequireAll,
		BatchSize:    publishChunk,
		BatchBytes:   16 << 20,
		BatchTimeout: time.Millisecond,
		Transport:    &kafka.Transport{},
	}}
}

// backlog publishes every order, in chunks, before the consumer starts.
func (p *publisher) backlog(ctx context.Context) error {
	for from := 0; from < p.set.n; from += publishChunk {
		if err := p.publish(ctx, from, min(from+publishChunk, p.set.n)); err != nil {
			return err
		}
	}
	return nil
}

// paced publishes the orders at rate per second until all are out or ctx ends.
func (p *publisher) paced(ctx context.Context, rate float64) error {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	start := time.Now()
	for sent := 0; sent < p.set.n; {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		due := min(p.set.n, int(rate*time.Since(start).Seconds()))
		for sent < due {
			to := min(due, sent+publishChunk)
			if err := p.publish(ctx, sent, to); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			sent = to
		}
	}
	return nil
}

// publish writes orders [from, to), stamped with the time of this call.
func (p *publisher) publish(ctx context.Context, from, to int) error {
	at := time.Now().Truncate(time.Millisecond)
	msgs := make([]kafka.Message, 0, to-from)
	for i := from; i < to; i++ {
		msgs = append(msgs, p.set.message(i, at))
		p.set.producedAt[i].Store(at.UnixMilli())
	}
	if err := p.w.WriteMessages(ctx, msgs...); err != nil {
		return fmt.Errorf("publishing orders %d to %d: %w", from, to-1, err)
	}
	return nil
}

func (p *publisher) close() { _ = p.w.Close() }
