// Package kafkatest gives tests a real Kafka broker: its address from the
// KAFKA_BROKERS environment variable, and uniquely named topics deleted afterwards.
package kafkatest

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// Brokers returns the bootstrap addresses in KAFKA_BROKERS, or skips the test
// with a one-line reason when it is not set (and fails it when CI is set).
func Brokers(t testing.TB) []string {
	t.Helper()
	v := strings.TrimSpace(os.Getenv("KAFKA_BROKERS"))
	if v == "" {
		if os.Getenv("CI") != "" {
			// CI always starts a broker: a skip there would hide a broken setup.
			t.Fatal("CI is set but KAFKA_BROKERS is not: .ci/run must start the broker")
		}
		t.Skip("needs a real Kafka broker: export KAFKA_BROKERS=$(scripts/kafka-local start)")
	}
	var out []string
	for _, b := range strings.Split(v, ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	return out
}

var seq atomic.Int64

// Name returns a topic or group name unique to this test run.
func Name(t testing.TB, prefix string) string {
	t.Helper()
	clean := strings.NewReplacer("/", "-", " ", "-", "#", "-").Replace(t.Name())
	if len(clean) > 40 {
		clean = clean[:40]
	}
	return fmt.Sprintf("%s.%s.%d.%d", prefix, clean, time.Now().UnixNano()%1e9, seq.Add(1))
}

// CreateTopic creates a topic and deletes it when the test ends.
func CreateTopic(t testing.TB, brokers []string, name string, partitions int) {
	t.Helper()
	c := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 20 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := c.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{
		Topic: name, NumPartitions: partitions, ReplicationFactor: 1,
	}}})
	if err != nil {
		t.Fatalf("creating topic %s: %v", name, err)
	}
	if err := resp.Errors[name]; err != nil {
		t.Fatalf("creating topic %s: %v", name, err)
	}
	waitForLeaders(t, c, name, partitions)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_, _ = c.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: []string{name}})
	})
}

// waitForLeaders waits until every partition has a leader, so that the first
// writes do not fail while the topic is being set up.
func waitForLeaders(t testing.TB, c *kafka.Client, name string, partitions int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		md, err := c.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{name}})
		cancel()
		if err == nil && len(md.Topics) == 1 && md.Topics[0].Error == nil && len(md.Topics[0].Partitions) == partitions {
			ready := true
			for _, p := range md.Topics[0].Partitions {
				if p.Error != nil || p.Leader.Host == "" {
					ready = false
				}
			}
			if ready {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("topic %s has no leaders after 20s (last error: %v)", name, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
