package app

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"

	"github.com/acme-sp/wholesale-provisioner/provisioning"
)

func TestRecordOf(t *testing.T) {
	log := zerolog.Nop()
	p := newPeers("me", time.Minute, &log)
	at := time.Unix(1_800_000_000, 0)
	for _, tc := range []struct {
		name  string
		value string
		age   time.Duration
		left  time.Duration
		bad   string
	}{
		{"another's pause", `{"schemaVersion":1,"instance":"other","pauseMs":3000}`, time.Second, 2 * time.Second, ""},
		{"over already", `{"schemaVersion":1,"instance":"other","pauseMs":1000}`, 2 * time.Second, -time.Second, ""},
		{"my own", `{"schemaVersion":1,"instance":"me","pauseMs":3000}`, 0, 0, ""},
		{"not JSON", `{"schemaVersion":1,`, 0, 0, "not JSON"},
		{"a heartbeat", `{"schemaVersion":1,"instance":"other","generation":7,"partitions":4}`, 0, 0, ""},
		{"a pause from before heartbeats", `{"schemaVersion":1,"instance":"other","pauseMs":3000}`, 0, 3 * time.Second, ""},
		{"a negative pause", `{"schemaVersion":1,"instance":"other","pauseMs":-5}`, 0, 0, "not a budget record"},
		{"no instance", `{"schemaVersion":1,"generation":7,"partitions":4}`, 0, 0, "not a budget record"},
		{"more partitions than a topic has", `{"schemaVersion":1,"instance":"other","generation":7,"partitions":9999999}`, 0, 0, "not a budget record"},
		{"another version", `{"schemaVersion":2,"instance":"other","pauseMs":10}`, 0, 0, "not a budget record"},
		{"too large", `{"schemaVersion":1,"instance":"` + strings.Repeat("x", 600) + `","pauseMs":10}`, 0, 0, "more than a budget record's"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, left, err := p.recordOf(kafka.Message{Value: []byte(tc.value), Time: at}, at.Add(tc.age))
			switch {
			case tc.bad != "" && (err == nil || !strings.Contains(err.Error(), tc.bad)):
				t.Errorf("error %v, want one saying %q", err, tc.bad)
			case tc.bad == "" && (err != nil || left != tc.left):
				t.Errorf("left %v, error %v; want %v", left, err, tc.left)
			}
		})
	}
}

func TestOnPauseKeepsTheLongest(t *testing.T) {
	log := zerolog.Nop()
	p := newPeers("me", time.Minute, &log)
	p.onPause(time.Second)
	p.onPause(3 * time.Second) // the channel is full: merged, not blocked
	p.onPause(2 * time.Second)
	if got := <-p.told; got != 3*time.Second {
		t.Errorf("told %v, want the longest unsent pause, 3s", got)
	}
	select {
	case d := <-p.told:
		t.Errorf("a second pause %v waiting, want one", d)
	default:
	}
}

// members is a roster's view driven the way the budget topic drives it.
type members struct {
	t   *testing.T
	r   roster
	now time.Time
}

func newMembers(t *testing.T) *members {
	return &members{t: t, r: roster{self: "me", silence: 20 * time.Second, claims: map[string]*claim{}}, now: time.Unix(1_800_000_000, 0)}
}

// second is one heartbeat interval: this instance's own heartbeat read
// back, after those of the members named.
func (m *members) second(gen int32, partitions int, others ...string) {
	m.now = m.now.Add(beatEvery)
	for _, o := range others {
		m.r.heard(budgetRecord{SchemaVersion: 1, Instance: o, Generation: gen, Partitions: partitions}, m.now)
	}
	m.r.heard(budgetRecord{SchemaVersion: 1, Instance: "me", Generation: m.r.gen, Partitions: m.r.mine}, m.now)
}

func (m *members) wantShare(want float64, what string) {
	m.t.Helper()
	if got, _, _ := m.r.share(m.now); got != want {
		m.t.Errorf("%s: share %v, want %v", what, got, want)
	}
}

func TestRosterTakesASilentMembersShare(t *testing.T) {
	m := newMembers(t)
	m.r.assigned(5, 4, 12)
	m.second(5, 4, "a", "b")
	m.wantShare(1.0/3, "three members heard")
	m.second(5, 4, "b")
	m.wantShare(1.0/3, "two of my heartbeats read since a's")
	m.second(5, 4, "b")
	if share, out, _ := m.r.share(m.now); share != 0.5 || len(out) != 1 || out[0].instance != "a" || out[0].partitions != 4 {
		t.Errorf("three of my heartbeats read since a's: share %v, counted out %+v; want 0.5 with a's 4 partitions out", share, out)
	}
	if _, out, _ := m.r.share(m.now); len(out) != 0 {
		t.Errorf("a counted out twice: %+v", out)
	}
	m.second(5, 4, "a", "b")
	if share, _, back := m.r.share(m.now); share != 1.0/3 || len(back) != 1 || back[0].instance != "a" {
		t.Errorf("a heard again: share %v, back %+v; want a third with a back", share, back)
	}
}

func TestRosterGivesTheShareBackWhenTheSilenceIsTooLong(t *testing.T) {
	m := newMembers(t)
	m.r.assigned(5, 4, 12)
	m.second(5, 4, "a", "b")
	for range 5 {
		m.second(5, 4, "b")
	}
	m.wantShare(0.5, "a silent, within the silence time")
	m.now = m.now.Add(m.r.silence)
	m.wantShare(1.0/3, "a silent past the silence time, not expelled by the group")
}

func TestRosterForgetsTheClaimsOfAnOldGeneration(t *testing.T) {
	m := newMembers(t)
	m.r.assigned(5, 4, 12)
	m.second(5, 4, "a", "b")
	for range silentBeats {
		m.second(5, 4, "b")
	}
	m.wantShare(0.5, "a silent")
	// The group expelled a and gave its partitions to the two left.
	m.r.assigned(6, 6, 12)
	m.wantShare(0.5, "the next generation, a's partitions assigned")
	if _, ok := m.r.claims["a"]; ok {
		t.Error("a's claim of generation 5 is still kept in generation 6")
	}
	m.second(6, 6, "b")
	m.second(5, 4, "late") // a record of the old generation, read late
	for range silentBeats {
		m.second(6, 6, "b")
	}
	m.wantShare(0.5, "a member of another generation is never counted out")
}

func TestRosterGivesAStaticRestartItsShareBack(t *testing.T) {
	m := newMembers(t)
	m.r.assigned(5, 4, 12)
	m.second(5, 4, "a", "b")
	for range silentBeats {
		m.second(5, 4, "b")
	}
	m.wantShare(0.5, "a silent")
	// a's pod restarted under its group instance id: same generation, same
	// partitions, a new instance name.
	m.second(5, 4, "b", "a-restarted")
	m.wantShare(1.0/3, "a's successor heard")
}

func TestRosterWithoutPeersOrPartitions(t *testing.T) {
	m := newMembers(t)
	if share, _, _ := m.r.share(m.now); share != 0 {
		t.Errorf("before an assignment: share %v, want 0 (none set)", share)
	}
	m.r.assigned(3, 0, 12)
	m.wantShare(1.0/12, "no partition: a sliver for customer orders")
	m.r.assigned(4, 12, 12)
	m.wantShare(1, "alone")
}

func TestRosterRemembersAtMostMaxPeers(t *testing.T) {
	m := newMembers(t)
	m.r.assigned(5, 1, maxPartitions)
	for i := range maxPeers + 10 {
		m.r.heard(budgetRecord{SchemaVersion: 1, Instance: fmt.Sprint("peer-", i), Generation: 5, Partitions: 1}, m.now)
	}
	if len(m.r.claims) != maxPeers {
		t.Errorf("%d members remembered, want at most %d", len(m.r.claims), maxPeers)
	}
}

func TestPeersGiveTheLimiterItsShare(t *testing.T) {
	log := zerolog.Nop()
	p := newPeers("me", time.Minute, &log)
	p.limiter = provisioning.NewLimiter(provisioning.LimiterConfig{Rate: 300, Burst: 10})
	now := time.Now()
	if share := p.assigned(5, 4, 12, now); share != 1.0/3 {
		t.Fatalf("share %v, want a third", share)
	}
	if st := p.limiter.Stats(); st.Share != 1.0/3 || st.Rate != 100 {
		t.Errorf("limiter share %v at %v/s, want a third at 100/s", st.Share, st.Rate)
	}
	select {
	case <-p.beat:
	default:
		t.Error("an assignment asked for no heartbeat at once")
	}
}
