package bench

import (
	"context"
	"fmt"
	"runtime/pprof"
	"slices"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/acme-sp/wholesale-provisioner/producer"
	"github.com/acme-sp/wholesale-provisioner/schemas"
)

// observer reads a trial's outcomes topic as a downstream system would, one
// reader per partition from the first offset, and keeps per order whether it was
// answered and how long after its publication. It reads only headers and
// timestamps, so that it takes little of the CPU it shares with the consumer
// under test. Its goroutines carry the profiler label component=observer.
type observer struct {
	set    *orderSet
	cancel context.CancelFunc
	wg     sync.WaitGroup
	done   chan struct{} // closed when every order is answered

	mu         sync.Mutex
	seen       []bool
	answered   int
	duplicates int
	failed     int
	latencies  []int64         // milliseconds, one per answered order
	times      map[int][]int64 // outcome timestamps (Unix ms) by partition
	doneAt     time.Time
	err        error
}

// observation is a snapshot of what an observer counted.
type observation struct {
	answered, duplicates, failed int
	latencies                    []int64         // sorted
	times                        map[int][]int64 // sorted
	doneAt                       time.Time
}

// startObserver starts reading topic on addrs; stop ends it.
func startObserver(ctx context.Context, addrs []string, topic string, partitions int, set *orderSet) *observer {
	ctx, cancel := context.WithCancel(ctx)
	o := &observer{set: set, cancel: cancel, done: make(chan struct{}), seen: make([]bool, set.n), latencies: make([]int64, 0, set.n), times: map[int][]int64{}}
	for p := range partitions {
		o.wg.Add(1)
		go pprof.Do(ctx, pprof.Labels("component", "observer"), func(ctx context.Context) {
			defer o.wg.Done()
			o.read(ctx, addrs, topic, p)
		})
	}
	return o
}

// read reads one partition until ctx ends.
func (o *observer) read(ctx context.Context, addrs []string, topic string, partition int) {
	// MinBytes lets a fetch wait up to MaxWait for outcomes to gather: the
	// observer shares the machine with the consumer it measures, and one fetch
	// per handful of outcomes took CPU from it. Latencies are unaffected (they
	// come from the records' timestamps); the trial's end moves by <= MaxWait.
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers: addrs, Topic: topic, Partition: partition,
		MinBytes: 64 << 10, MaxBytes: 16 << 20, MaxWait: 50 * time.Millisecond,
	})
	defer r.Close()
	if err := r.SetOffset(kafka.FirstOffset); err != nil {
		o.fail(fmt.Errorf("reading outcomes: %w", err))
		return
	}
	for {
		m, err := r.ReadMessage(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			// The reader keeps its offset and dials again: the broker may be
			// down on purpose (broker-restart); a trial that never ends is
			// ended by its max duration.
			_ = sleep(ctx, 100*time.Millisecond)
			continue
		}
		o.add(m)
	}
}

func (o *observer) fail(err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.err == nil {
		o.err = err
	}
}

// add counts one outcome record.
func (o *observer) add(m kafka.Message) {
	var id, status string
	for _, h := range m.Headers {
		switch h.Key {
		case producer.HeaderOrderID:
			id = string(h.Value)
		case producer.HeaderOutcome:
			status = string(h.Value)
		}
	}
	i, ok := o.set.index(id)
	if !ok {
		o.fail(fmt.Errorf("outcome at offset %d of partition %d names no order of this trial (%q)", m.Offset, m.Partition, id))
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.times[m.Partition] = append(o.times[m.Partition], m.Time.UnixMilli())
	if o.seen[i] {
		o.duplicates++
		return
	}
	o.seen[i] = true
	o.answered++
	o.latencies = append(o.latencies, m.Time.UnixMilli()-o.set.producedAt[i].Load())
	if status == string(schemas.StatusFailed) {
		o.failed++
	}
	if o.answered == o.set.n {
		o.doneAt = time.Now()
		close(o.done)
	}
}

// snapshot returns what was counted so far.
func (o *observer) snapshot() (observation, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	lat := slices.Clone(o.latencies)
	slices.Sort(lat)
	times := make(map[int][]int64, len(o.times))
	for p, ts := range o.times {
		times[p] = slices.Sorted(slices.Values(ts))
	}
	return observation{answered: o.answered, duplicates: o.duplicates, failed: o.failed, latencies: lat, times: times, doneAt: o.doneAt}, o.err
}

// stop ends the readers and waits for them.
func (o *observer) stop() {
	o.cancel()
	o.wg.Wait()
}

// waitAnswered waits until n orders are answered (true) or ctx ends (false).
func (o *observer) waitAnswered(ctx context.Context, n int) bool {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		o.mu.Lock()
		answered := o.answered
		o.mu.Unlock()
		if answered >= n {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-o.done:
			return true
		case <-t.C:
		}
	}
}
