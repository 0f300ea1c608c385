package reliability

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/acme-sp/wholesale-provisioner/provisioning/webexsim"
)

// TestRebalanceStorm runs provisioner instances in one consumer group on a
// 12-partition topic and makes one join or leave every 2 to 3 seconds while
// the orders run. Nothing is lost (every order answered, everything
// committed) and nothing is provisioned twice; orders answered again after a
// rebalance carry the same event id.
func TestRebalanceStorm(t *testing.T) {
	const (
		n     = 5000
		storm = 30 * time.Second
	)
	start := time.Now()
	e := newEnv(t, envConfig{partitions: 12, timeout: 4 * time.Minute, sim: webexsim.Config{Latency: 20 * time.Millisecond}})
	s := e.makeOrders(n, 20)
	outs, dlq := e.collect(e.outs, true, 3), e.collect(e.dlt, false, 1)
	cfg := e.appConfig()
	cfg.Consumer.MaxInFlight = 8 // slow enough that the storm blows over a run in progress

	var (
		mu      sync.Mutex
		members []*instance
		leaving sync.WaitGroup
		seq     int
		joins   int
		leaves  int
	)
	join := func() {
		seq++
		joins++
		members = append(members, e.startApp(fmt.Sprintf("m%d", seq), cfg))
	}
	leave := func() {
		i := rand.IntN(len(members))
		m := members[i]
		members = append(members[:i], members[i+1:]...)
		leaves++
		leaving.Add(1)
		go func() { defer leaving.Done(); m.stop() }() // drains and leaves the group meanwhile
	}
	mu.Lock()
	join()
	join()
	mu.Unlock()
	e.publish(s.msgs)

	stormStart := time.Now()
	for time.Since(stormStart) < storm {
		if _, d := outs.count(); d >= n {
			break
		}
		time.Sleep(2*time.Second + rand.N(time.Second))
		mu.Lock()
		switch {
		case len(members) <= 1:
			join()
		case len(members) >= 4:
			leave()
		case rand.IntN(2) == 0:
			join()
		default:
			leave()
		}
		mu.Unlock()
	}
	stormed := time.Since(stormStart).Round(time.Second)
	_, atCalm := outs.count()
	mu.Lock()
	if len(members) == 0 {
		join()
	}
	left := len(members)
	mu.Unlock()
	t.Logf("storm over after %s: %d joins, %d leaves, %d members left; %d of %d orders answered",
		stormed, joins, leaves, left, atCalm, n)

	e.waitAnswered(outs, n)
	e.waitAnswered(dlq, len(s.rejected))
	e.waitNoLag()
	leaving.Wait()
	for _, m := range members {
		if !m.running() {
			t.Errorf("member %s stopped by itself: %v", m.name, m.err)
		}
	}

	redelivered, lost := e.checkOutcomes(outs, s)
	e.checkCreates(s.valid())
	generations := len(linesWith(e.logs.Bytes(), "partitions assigned"))
	records, answered := outs.count()
	deadRecords, _ := dlq.count()
	figures{orders: n, faults: fmt.Sprintf("%d joins and %d leaves in %s, 2 to 4 members (%d assignments)", joins, leaves, stormed, generations),
		outcomes: records, answered: answered, redelivered: redelivered, deadLetters: deadRecords,
		duplicates: e.sim.Stats().EmailsCreatedMoreThanOnce, lost: lost, took: time.Since(start)}.log(t)
}
