package consumer

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"
	"github.com/segmentio/kafka-go/protocol/consumer"
)

func partitionsUpTo(n int) []int {
	ps := make([]int, n)
	for i := range ps {
		ps[i] = i
	}
	return ps
}

// checkPlan fails unless every partition is given exactly once and the
// members' counts differ by at most one.
func checkPlan(t *testing.T, plan map[string][]int, members []member, partitions []int) {
	t.Helper()
	seen := map[int]string{}
	lo, hi := len(partitions), 0
	for _, m := range members {
		for _, p := range plan[m.id] {
			if other, dup := seen[p]; dup {
				t.Fatalf("partition %d given to %s and %s", p, other, m.id)
			}
			seen[p] = m.id
		}
		lo, hi = min(lo, len(plan[m.id])), max(hi, len(plan[m.id]))
	}
	if len(seen) != len(partitions) {
		t.Fatalf("%d of %d partitions given: %v", len(seen), len(partitions), plan)
	}
	if hi-lo > 1 {
		t.Fatalf("unbalanced plan (%d to %d partitions a member): %v", lo, hi, plan)
	}
}

func moved(before, after map[string][]int) int {
	n := 0
	for id, ps := range after {
		for _, p := range ps {
			if !slices.Contains(before[id], p) {
				n++
			}
		}
	}
	return n
}

func withOwned(ids []string, plan map[string][]int) []member {
	ms := make([]member, len(ids))
	for i, id := range ids {
		ms[i] = member{id: id, topics: []string{"orders"}, owned: plan[id]}
	}
	return ms
}

// TestStickyAssignmentMovesOnlyWhatItMust: from a balanced group of three on
// 12 partitions, a fourth member takes exactly 3 partitions (no other moves),
// and when one of four leaves, only its 3 partitions move.
func TestStickyAssignmentMovesOnlyWhatItMust(t *testing.T) {
	parts := partitionsUpTo(12)
	three := []string{"a", "b", "c"}
	first := assignSticky(withOwned(three, nil), parts)
	checkPlan(t, first, withOwned(three, nil), parts)

	again := assignSticky(withOwned(three, first), parts)
	if n := moved(first, again); n != 0 {
		t.Fatalf("an unchanged group moved %d partitions: %v -> %v", n, first, again)
	}

	four := []string{"a", "b", "c", "d"}
	joined := assignSticky(withOwned(four, first), parts)
	checkPlan(t, joined, withOwned(four, first), parts)
	if n := moved(first, joined); n != 3 {
		t.Fatalf("a joining member moved %d partitions, want the 3 it takes: %v -> %v", n, first, joined)
	}

	left := assignSticky(withOwned([]string{"a", "c", "d"}, joined), parts)
	checkPlan(t, left, withOwned([]string{"a", "c", "d"}, joined), parts)
	if n := moved(joined, left); n != len(joined["b"]) {
		t.Fatalf("a leaving member moved %d partitions, want its %d: %v -> %v", n, len(joined["b"]), joined, left)
	}
}

// TestStickyAssignmentIgnoresClaimsItCannotKeep: two members claiming the
// same partition, a claim of a partition that no longer exists, and one
// member claiming everything still give a complete, balanced plan.
func TestStickyAssignmentIgnoresClaimsItCannotKeep(t *testing.T) {
	parts := partitionsUpTo(6)
	ms := []member{
		{id: "a", owned: []int{0, 1, 2, 3, 4, 5, 9}},
		{id: "b", owned: []int{0, 1}},
		{id: "c"},
	}
	plan := assignSticky(ms, parts)
	checkPlan(t, plan, ms, parts)
	if !slices.Equal(plan["a"], []int{0, 1}) {
		t.Fatalf("the member that owned most kept %v, want its first two", plan["a"])
	}
	if got := assignSticky(nil, parts); len(got) != 0 {
		t.Fatalf("no members, plan %v", got)
	}
	if got := assignSticky(ms, nil); moved(nil, got) != 0 {
		t.Fatalf("no partitions, plan %v", got)
	}
}

// TestDecodeSubscriptionOfEveryVersion: a member of an older client writes
// version 0 (no owned partitions); ours writes 1 with them.
func TestDecodeSubscriptionOfEveryVersion(t *testing.T) {
	for v := int16(0); v <= 1; v++ {
		in := consumer.Subscription{Version: v, Topics: []string{"orders"}}
		if v >= 1 {
			in.OwnedPartitions = []consumer.TopicPartition{{Topic: "orders", Partitions: []int32{2, 5}}}
		}
		b, err := protocol.Marshal(v, in)
		if err != nil {
			t.Fatal(err)
		}
		got := decodeSubscription(b)
		if !slices.Equal(got.Topics, []string{"orders"}) {
			t.Fatalf("v%d: topics %v", v, got.Topics)
		}
		if want := map[int16][]int{0: nil, 1: {2, 5}}[v]; !slices.Equal(ownedOf(got, "orders"), want) {
			t.Fatalf("v%d: owned %v, want %v", v, ownedOf(got, "orders"), want)
		}
	}
	if got := decodeSubscription([]byte{0}); len(got.Topics) != 0 {
		t.Fatalf("a truncated subscription decoded to %+v", got)
	}
}

// assignments records the partitions each generation of one member held.
type assignments struct {
	mu   sync.Mutex
	gens [][]int
	rev  int
}

func (a *assignments) Committed(time.Duration, error) {}
func (a *assignments) Assigned(_ int32, ps []int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.gens = append(a.gens, slices.Clone(ps))
}
func (a *assignments) Revoked([]int, time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.rev++
}
func (a *assignments) last() (gens int, ps []int, revoked int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.gens) == 0 {
		return 0, nil, a.rev
	}
	return len(a.gens), a.gens[len(a.gens)-1], a.rev
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type member2 struct {
	obs    *assignments
	cancel context.CancelFunc
	done   chan error
}

func startMember(t *testing.T, brokers []string, topic, instance string) *member2 {
	t.Helper()
	m := &member2{obs: &assignments{}, done: make(chan error, 1)}
	c, err := New(Config{Brokers: brokers, GroupID: "static", Topic: topic, GroupInstanceID: instance,
		SessionTimeout: 6 * time.Second, HeartbeatInterval: 200 * time.Millisecond, Observer: m.obs},
		HandlerFunc(func(context.Context, kafka.Message, *Slot) error { return nil }))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	go func() { m.done <- c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-m.done })
	return m
}

// TestStaticMemberRestartKeepsTheGroup: a static member that stops and
// comes back with the same instance id gets its partitions back, and the
// other member never gives up its own.
func TestStaticMemberRestartKeepsTheGroup(t *testing.T) {
	brokers, topic := setup(t, 4, 0)
	a := startMember(t, brokers, topic, "pod-a")
	waitFor(t, "pod-a's first assignment", func() bool { n, ps, _ := a.obs.last(); return n > 0 && len(ps) == 4 })
	b := startMember(t, brokers, topic, "pod-b")
	waitFor(t, "two members of two partitions each", func() bool {
		_, pa, _ := a.obs.last()
		_, pb, _ := b.obs.last()
		return len(pa) == 2 && len(pb) == 2
	})
	_, heldByA, _ := a.obs.last()
	genB, heldByB, revB := b.obs.last()

	a.cancel()
	if err := <-a.done; err != nil {
		t.Fatalf("pod-a stopped with %v", err)
	}
	a.done <- nil // for the cleanup
	a2 := startMember(t, brokers, topic, "pod-a")
	waitFor(t, "pod-a again", func() bool { n, _, _ := a2.obs.last(); return n > 0 })
	if _, got, _ := a2.obs.last(); !slices.Equal(got, heldByA) {
		t.Fatalf("pod-a restarted with %v, held %v before", got, heldByA)
	}
	time.Sleep(time.Second) // a rebalance, were there one, would reach pod-b by now
	// The restarted member may have led the group, and a leader's return is a
	// rebalance (JoinGroup before v9): pod-b may see a new generation, but
	// keeps its partitions throughout.
	if g, got, rev := b.obs.last(); rev != revB || !slices.Equal(got, heldByB) {
		t.Fatalf("pod-b paused: generations %d -> %d, revoked %d -> %d times, partitions %v -> %v", genB, g, revB, rev, heldByB, got)
	}
}

// TestFencedStaticMemberStops: a second process with the same instance id
// takes the partitions, and the first one stops with an error instead of
// handling or committing them.
func TestFencedStaticMemberStops(t *testing.T) {
	brokers, topic := setup(t, 2, 0)
	a := startMember(t, brokers, topic, "pod-a")
	waitFor(t, "the first pod-a's assignment", func() bool { n, _, _ := a.obs.last(); return n > 0 })
	b := startMember(t, brokers, topic, "pod-a")
	waitFor(t, "the second pod-a's assignment", func() bool { n, _, _ := b.obs.last(); return n > 0 })
	select {
	case err := <-a.done:
		if !errors.Is(err, errFenced) {
			t.Fatalf("the fenced member stopped with %v, want %v", err, errFenced)
		}
		a.done <- err
	case <-time.After(10 * time.Second):
		t.Fatal("the fenced member still runs")
	}
}
