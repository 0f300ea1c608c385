package consumer

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
)

func setup(t *testing.T, partitions int32, n int) (brokers []string, topic string) {
	t.Helper()
	topic = "orders"
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, topic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	w := &kafka.Writer{Addr: kafka.TCP(c.ListenAddrs()...), Topic: topic, Balancer: kafka.Murmur2Balancer{Consistent: true}, RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond}
	defer w.Close()
	var msgs []kafka.Message
	for i := 0; i < n; i++ {
		msgs = append(msgs, kafka.Message{Key: []byte("k" + strconv.Itoa(i%5)), Value: []byte(strconv.Itoa(i))})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	return c.ListenAddrs(), topic
}

func lagOf(t *testing.T, brokers []string, group, topic string) int64 {
	t.Helper()
	ls, err := Lag(context.Background(), &kafka.Client{Addr: kafka.TCP(brokers...)}, group, topic)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, l := range ls {
		n += l.Lag
	}
	return n
}

// TestFailedRecordIsRetriedNotSkipped: a handler error keeps the record (and
// everything after it on its partition) from being committed until it succeeds.
func TestFailedRecordIsRetriedNotSkipped(t *testing.T) {
	brokers, topic := setup(t, 2, 20)
	var mu sync.Mutex
	fails := map[string]int{"3": 3} // record "3" fails three times
	seen := map[string][]int{}      // key -> values in handling order
	total := 0
	done := make(chan struct{})
	h := HandlerFunc(func(ctx context.Context, m kafka.Message, slot *Slot) error {
		mu.Lock()
		defer mu.Unlock()
		if fails[string(m.Value)] > 0 {
			fails[string(m.Value)]--
			return errors.New("webex down")
		}
		v, _ := strconv.Atoi(string(m.Value))
		seen[string(m.Key)] = append(seen[string(m.Key)], v)
		if total++; total == 20 {
			close(done)
		}
		return nil
	})
	c, err := New(Config{Brokers: brokers, GroupID: "g", Topic: topic, RetryInitialInterval: 5 * time.Millisecond}, h)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- c.Run(ctx) }()
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatalf("not all records handled: %v", seen)
	}
	for k, vs := range seen {
		for i := 1; i < len(vs); i++ {
			if vs[i] < vs[i-1] {
				t.Errorf("key %s handled out of order: %v", k, vs)
			}
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for lagOf(t, brokers, "g", topic) != 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if l := lagOf(t, brokers, "g", topic); l != 0 {
		t.Errorf("lag %d after all records were handled", l)
	}
	cancel()
	if err := <-errc; err != nil {
		t.Errorf("Run: %v", err)
	}
}

// TestUnfinishedRecordIsNotCommitted: when the consumer stops while a record is
// still failing, nothing from it on is committed, and a new member of the group
// gets it again.
func TestUnfinishedRecordIsNotCommitted(t *testing.T) {
	brokers, topic := setup(t, 1, 5)
	var handled []string
	var mu sync.Mutex
	stuck := make(chan struct{})
	var once sync.Once
	h := HandlerFunc(func(ctx context.Context, m kafka.Message, slot *Slot) error {
		if string(m.Value) == "2" {
			once.Do(func() { close(stuck) })
			return errors.New("still failing")
		}
		mu.Lock()
		handled = append(handled, string(m.Value))
		mu.Unlock()
		return nil
	})
	c, _ := New(Config{Brokers: brokers, GroupID: "g", Topic: topic, RetryInitialInterval: 5 * time.Millisecond}, h)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	errc := make(chan error, 1)
	go func() { errc <- c.Run(ctx) }()
	select {
	case <-stuck:
	case <-ctx.Done():
		t.Fatal("record 2 never reached the handler")
	}
	time.Sleep(100 * time.Millisecond)
	cancel()
	<-errc
	ls, err := Lag(context.Background(), &kafka.Client{Addr: kafka.TCP(brokers...)}, "g", topic)
	if err != nil {
		t.Fatal(err)
	}
	if ls[0].Committed != 2 {
		t.Fatalf("committed offset %d, want 2 (records 0 and 1 finished, 2 not)", ls[0].Committed)
	}

	// A new member resumes at the unfinished record: it gets 2, 3 and 4 (records
	// after an unfinished one were not committed either), and not 0 or 1.
	var mu2 sync.Mutex
	var got2 []int64
	all := make(chan struct{})
	c2, _ := New(Config{Brokers: brokers, GroupID: "g", Topic: topic}, HandlerFunc(func(ctx context.Context, m kafka.Message, slot *Slot) error {
		mu2.Lock()
		defer mu2.Unlock()
		got2 = append(got2, m.Offset)
		if len(got2) == 3 {
			close(all)
		}
		return nil
	}))
	ctx2, cancel2 := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel2()
	go func() { errc <- c2.Run(ctx2) }()
	select {
	case <-all:
	case <-ctx2.Done():
		t.Fatalf("the new member got %v, want offsets 2, 3, 4", got2)
	}
	time.Sleep(200 * time.Millisecond)
	cancel2()
	<-errc
	mu2.Lock()
	defer mu2.Unlock()
	sort.Slice(got2, func(i, j int) bool { return got2[i] < got2[j] })
	if fmt.Sprint(got2) != "[2 3 4]" {
		t.Errorf("the new member handled offsets %v, want [2 3 4]", got2)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []Config{{}, {Brokers: []string{"a:1"}}, {Brokers: []string{"a:1"}, GroupID: "g"}} {
		if _, err := New(c, HandlerFunc(func(context.Context, kafka.Message, *Slot) error { return nil })); err == nil {
			t.Errorf("New(%+v) succeeded", c)
		}
	}
}
