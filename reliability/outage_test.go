package reliability

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/acme-sp/wholesale-provisioner/internal/kafkatest"
	"github.com/acme-sp/wholesale-provisioner/internal/testkit"
	"github.com/acme-sp/wholesale-provisioner/provisioning/webexsim"
)

// outageLength is how long the broker stays away.
const outageLength = 30 * time.Second

// TestBrokerOutage kills the Kafka broker with SIGKILL in the middle of a run
// and starts it again 30 s later. The provisioner keeps running, reports not-ready (kafka
// check failing) while the broker is gone, reconnects by itself and finishes
// with nothing lost. The broker is one of the test's own (scripts/kafka-local
// with a separate state folder), never the shared one of KAFKA_BROKERS. The
// orders of a broker killed under them are neither lost nor provisioned twice,
// and those answered again carry the same event ids.
func TestBrokerOutage(t *testing.T) {
	t.Parallel() // mostly waiting, on a broker of its own: overlaps the lighter tests
	start := time.Now()
	b := kafkatest.StartOwn(t)
	t.Logf("own broker at %s (%s)", b.Addr, time.Since(start).Round(time.Millisecond))

	const n = 3000
	e := newEnv(t, envConfig{brokers: []string{b.Addr}, partitions: 6, timeout: 5 * time.Minute,
		sim: webexsim.Config{Latency: 20 * time.Millisecond}})
	s := e.makeOrders(n, 10)
	outs, dlq := e.collect(e.outs, true, 3), e.collect(e.dlt, false, 1)
	cfg := e.appConfig()
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.Consumer.MaxInFlight = 16 // a run of some seconds, so that the outage falls in its middle
	in := e.startApp("a", cfg)
	e.publish(s.msgs)
	testkit.WaitFor(e.ctx, t, "a fifth of the outcomes", func() error {
		if _, d := outs.count(); d < n/5 {
			return fmt.Errorf("%d of %d", d, n)
		}
		return nil
	})

	b.Kill()
	down := time.Now()
	_, atStop := outs.count()
	var notReady, readyDuring int
	var detail string
	for time.Since(down) < outageLength {
		if !in.running() {
			t.Fatalf("the provisioner stopped during the outage: %v", in.err)
		}
		code, r, err := readyz(in.app.HTTPAddr())
		switch {
		case err != nil:
			t.Fatalf("/readyz during the outage: %v", err)
		case code == http.StatusServiceUnavailable && !r.Ready && !r.Checks["kafka"].OK:
			if notReady == 0 {
				detail = r.Checks["kafka"].Detail
				t.Logf("not ready %s after the broker stopped: kafka: %s", time.Since(down).Round(time.Millisecond), detail)
			}
			notReady++
		case time.Since(down) > 12*time.Second:
			// The kafka check runs every 5 s with a 5 s timeout: past 10 s it must see the outage.
			if readyDuring++; readyDuring == 1 {
				t.Errorf("/readyz %d %+v %s after the broker stopped, while a metadata request of its own gets %v",
					code, r, time.Since(down).Round(time.Millisecond), brokerReachable(b.Addr, e.orders))
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	if notReady == 0 {
		t.Errorf("/readyz never reported the broker missing during the outage (%d polls said ready after 12 s)", readyDuring)
	} else if !strings.Contains(detail, "broker unreachable") {
		t.Errorf("kafka check detail %q does not say the broker is unreachable", detail)
	}

	b.Start()
	up := time.Now()
	testkit.WaitFor(e.ctx, t, "ready again", func() error {
		code, r, err := readyz(in.app.HTTPAddr())
		if err != nil || code != http.StatusOK || !r.Ready {
			return fmt.Errorf("/readyz %d %+v %v", code, r, err)
		}
		return nil
	})
	t.Logf("ready %s after the broker came back", time.Since(up).Round(time.Millisecond))
	e.waitAnswered(outs, n)
	e.waitAnswered(dlq, len(s.rejected))
	e.waitNoLag()
	t.Logf("all answered %s after the broker came back", time.Since(up).Round(time.Millisecond))
	if !in.running() {
		t.Fatalf("the provisioner stopped: %v", in.err)
	}
	in.stop()
	if in.err != nil {
		t.Errorf("Run: %v", in.err)
	}

	// An outage is a few lines, not one per order and retry: its start, a
	// reminder at most every 30 s, its end.
	var errorLines []string
	for _, l := range linesWith(e.logs.Bytes(), "") {
		if l.Level == "error" {
			errorLines = append(errorLines, l.Message)
		}
	}
	if len(errorLines) > 4 {
		t.Errorf("%d error lines for one outage of %s, want its start and reminders:\n%s", len(errorLines), outageLength, strings.Join(errorLines, "\n"))
	}
	t.Logf("error lines for the outage: %q", errorLines)
	if len(linesWith(e.logs.Bytes(), "Kafka answers again")) == 0 {
		t.Error("no line said that the outage was over")
	}

	redelivered, lost := e.checkOutcomes(outs, s)
	e.checkCreates(s.valid())
	records, answered := outs.count()
	deadRecords, _ := dlq.count()
	t.Logf("broker stopped with %d of %d orders answered; not ready during the outage: %d polls", atStop, n, notReady)
	figures{orders: n, faults: fmt.Sprintf("broker killed (SIGKILL) for %s mid-run", outageLength), outcomes: records, answered: answered,
		redelivered: redelivered, deadLetters: deadRecords, duplicates: e.sim.Stats().EmailsCreatedMoreThanOnce,
		lost: lost, took: time.Since(start)}.log(t)
}

// brokerReachable asks the broker for the topic's metadata over a connection
// of its own (kafka.Client answers metadata from its cache).
func brokerReachable(addr, topic string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	conn, err := kafka.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(3 * time.Second))
	_, err = conn.ReadPartitions(topic)
	return err
}
