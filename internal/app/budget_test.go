package app

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"

	"github.com/acme-sp/wholesale-provisioner/provisioning"
)

func TestRecordOf(t *testing.T) {
	log := zerolog.Nop()
	p := newPeers("me", 300, time.Minute, &log)
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
		{"lending what it leaves", `{"schemaVersion":1,"instance":"other","generation":7,"partitions":4,"used":0.02,"lending":true}`, 0, 0, ""},
		{"more of the budget used than there is", `{"schemaVersion":1,"instance":"other","generation":7,"partitions":4,"used":1.5}`, 0, 0, "not a budget record"},
		{"a negative use", `{"schemaVersion":1,"instance":"other","generation":7,"partitions":4,"used":-0.1}`, 0, 0, "not a budget record"},
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
	p := newPeers("me", 300, time.Minute, &log)
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

// aFallsSilent: this instance and a and b hold 4 of 12 partitions each in
// generation 5; a falls silent and is counted out.
func (m *members) aFallsSilent() {
	m.t.Helper()
	m.r.assigned(5, 4, 12)
	m.second(5, 4, "a", "b")
	for range silentBeats {
		m.second(5, 4, "b")
	}
	m.wantShare(0.5, "a silent")
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
	m.aFallsSilent()
	m.second(5, 4, "b")
	m.second(5, 4, "b")
	m.wantShare(0.5, "a silent, within the silence time")
	m.now = m.now.Add(m.r.silence)
	m.wantShare(1.0/3, "a silent past the silence time, not expelled by the group")
}

func TestRosterForgetsTheClaimsOfAnOldGeneration(t *testing.T) {
	m := newMembers(t)
	m.aFallsSilent()
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
	m.aFallsSilent()
	// a's pod restarted under its group instance id: same generation, same
	// partitions, a new instance name.
	m.second(5, 4, "b", "a-restarted")
	m.wantShare(1.0/3, "a's successor heard")
	// a's time as a silent member is up while its successor holds its
	// partitions: they are not counted twice.
	m.now = m.now.Add(m.r.silence)
	m.second(5, 4, "b", "a-restarted")
	m.wantShare(1.0/3, "a's silence time up, its successor heard")
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
	p := newPeers("me", 300, time.Minute, &log)
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

// group is the rosters of members that all read the same heartbeats, as
// the budget topic makes them.
type group struct {
	rosters map[string]*roster
	now     time.Time
}

func newGroup(gen int32, partitions map[string]int) *group {
	g := &group{rosters: map[string]*roster{}, now: time.Unix(1_800_000_000, 0)}
	total := 0
	for _, p := range partitions {
		total += p
	}
	for name, p := range partitions {
		r := &roster{self: name, silence: 20 * time.Second, claims: map[string]*claim{}}
		r.assigned(gen, p, total)
		r.share(g.now)
		g.rosters[name] = r
	}
	// One heartbeat each at their fair share: they know each other.
	used := map[string]float64{}
	for name, r := range g.rosters {
		used[name] = r.fair
	}
	g.beat(used)
	return g
}

// beat has every member decide from what it used (a fraction of the group
// budget) whether it lends, and every member read every heartbeat.
func (g *group) beat(used map[string]float64) {
	g.now = g.now.Add(beatEvery)
	var recs []budgetRecord
	for name, r := range g.rosters {
		recs = append(recs, budgetRecord{SchemaVersion: 1, Instance: name, Generation: r.gen, Partitions: r.mine,
			Used: used[name], Lending: r.lends(used[name])})
	}
	for _, r := range g.rosters {
		for _, rec := range recs {
			r.heard(rec, g.now)
		}
		r.share(g.now)
	}
}

func (g *group) share(name string) float64 {
	s, _, _ := g.rosters[name].share(g.now)
	return s
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestRosterLendsWhatAnIdleMemberLeaves(t *testing.T) {
	g := newGroup(5, map[string]int{"busy": 4, "idle": 4, "also-idle": 4})
	// Before anyone has lent, each keeps its third.
	if s := g.share("busy"); !near(s, 1.0/3) {
		t.Fatalf("before any heartbeat: share %v, want a third", s)
	}
	g.beat(map[string]float64{"busy": 1.0 / 3, "idle": 0, "also-idle": 0.02})
	idle, alsoIdle := 0.1/3, 1.0/3-0.9*(1.0/3-0.02)
	if s := g.share("idle"); !near(s, idle) {
		t.Errorf("idle lends 90%% of its third: share %v, want %v", s, idle)
	}
	if s := g.share("also-idle"); !near(s, alsoIdle) {
		t.Errorf("also-idle lends 90%% of what it leaves: share %v, want %v", s, alsoIdle)
	}
	if s := g.share("busy"); !near(s, 1-idle-alsoIdle) {
		t.Errorf("busy borrows what both lend: share %v, want %v", s, 1-idle-alsoIdle)
	}

	// idle's orders come: it uses what it kept and stops lending.
	g.beat(map[string]float64{"busy": 0.9, "idle": idle, "also-idle": 0.02})
	if g.rosters["idle"].lending {
		t.Error("idle used all it kept and still lends")
	}
	// idle has its third back as soon as that heartbeat is read, and it and
	// busy split also-idle's loan by their partitions.
	half := 1.0/3 + (1.0/3-alsoIdle)/2
	if s := g.share("idle"); !near(s, half) {
		t.Errorf("idle needs its share again: share %v, want its third and half of also-idle's loan, %v", s, half)
	}
	if s := g.share("busy"); !near(s, half) {
		t.Errorf("busy borrows half of also-idle's loan: share %v, want %v", s, half)
	}
}

func TestRosterLendingHysteresis(t *testing.T) {
	g := newGroup(5, map[string]int{"a": 6, "b": 6})
	a := g.rosters["a"]
	if a.lends(0.16) || !a.lends(0.14) {
		t.Errorf("a member not lending lends below 30%% of its fair share (0.15 of the budget): at 0.16 %v, at 0.14 %v", a.lends(0.16), a.lends(0.14))
	}
	g.beat(map[string]float64{"a": 0.1, "b": 0.5})
	kept := g.share("a") // 0.5 - 0.9*0.4 = 0.14
	if !a.lends(0.9*kept-0.001) || a.lends(0.9*kept+0.001) {
		t.Errorf("a lender goes on below 90%% of the %v it kept: at %v %v, at %v %v", kept, 0.9*kept-0.001, a.lends(0.9*kept-0.001), 0.9*kept+0.001, a.lends(0.9*kept+0.001))
	}
	// A new generation starts with no one lending.
	a.assigned(6, 6, 12)
	if s, _, _ := a.share(g.now); !near(s, 0.5) {
		t.Errorf("a new generation: share %v, want a half until a lends again", s)
	}
}

// Whatever the members use and their partitions, the shares they give
// themselves add up to the budget while any member borrows, and never to more.
func TestRosterSharesAddUpToTheBudget(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 2000 {
		n := 1 + rng.IntN(6)
		parts := map[string]int{}
		for i := range n {
			parts[fmt.Sprint("m", i)] = rng.IntN(8) // 0 partitions: the sliver
		}
		g := newGroup(1, parts)
		for range 1 + rng.IntN(4) {
			used := map[string]float64{}
			for name := range parts {
				used[name] = rng.Float64() * g.share(name)
			}
			g.beat(used)
		}
		sum, borrowers, slivers := 0.0, 0, 0
		for name, r := range g.rosters {
			sum += g.share(name)
			if !r.lending {
				borrowers++
			}
			if r.mine == 0 {
				slivers++
			}
		}
		// A sliver is a partition's worth more than the assignment gives.
		if slivers > 0 {
			continue
		}
		switch {
		case sum > 1+1e-9:
			t.Fatalf("trial %d, partitions %v: the shares add up to %v, more than the budget", trial, parts, sum)
		case borrowers > 0 && !near(sum, 1):
			t.Fatalf("trial %d, partitions %v: with %d not lending the shares add up to %v, want the whole budget", trial, parts, borrowers, sum)
		}
	}
}

func TestUsageOf(t *testing.T) {
	var u usage
	at := time.Unix(1_800_000_000, 0)
	if _, measured := u.of(100, at, 300); measured {
		t.Error("measured with no interval over")
	}
	if used, _ := u.of(250, at.Add(beatEvery/4), 300); used != 0 {
		t.Errorf("a quarter of a heartbeat: used %v, want none said yet", used)
	}
	if used, measured := u.of(250, at.Add(beatEvery/2), 300); !measured || !near(used, 1) {
		t.Errorf("150 calls in half a second of a 300/s budget: used %v (measured %v), want all of it", used, measured)
	}
	if used, _ := u.of(310, at.Add(beatEvery/2+beatEvery), 300); !near(used, 0.2) {
		t.Errorf("60 calls in a second of 300/s: used %v, want 0.2", used)
	}
	if _, measured := (&usage{}).of(5, at, 0); measured {
		t.Error("measured against no budget")
	}
}

func TestRosterAloneNeverLends(t *testing.T) {
	g := newGroup(5, map[string]int{"a": 12})
	g.beat(map[string]float64{"a": 0})
	if g.rosters["a"].lending || g.share("a") != 1 {
		t.Errorf("an idle instance alone: lending %v with share %v, want its whole budget kept for its next orders", g.rosters["a"].lending, g.share("a"))
	}
}

func TestRosterIdleMembersLendAndTakeItBack(t *testing.T) {
	g := newGroup(5, map[string]int{"a": 6, "b": 6})
	g.beat(map[string]float64{"a": 0, "b": 0.01})
	kept := map[string]float64{"a": 0.5 - lent(0.5, 0), "b": 0.5 - lent(0.5, 0.01)}
	for name, want := range kept {
		if s := g.share(name); !g.rosters[name].lending || !near(s, want) {
			t.Errorf("two idle members: %s lending %v with share %v, want lending with %v", name, g.rosters[name].lending, s, want)
		}
	}
	// a's orders come: it uses what it kept, and has its half back and
	// b's loan from its next heartbeat.
	g.beat(map[string]float64{"a": kept["a"], "b": 0.01})
	if a, b := g.share("a"), g.share("b"); !near(a, 1-b) || !near(b, kept["b"]) {
		t.Errorf("a busy again: shares %v and %v, want b's loan to a", a, b)
	}
}
