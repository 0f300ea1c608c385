package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
)

// Broker says where a trial's topics live: a real Kafka cluster, or an
// in-process Kafka-protocol broker (kfake) started afresh for every trial.
type Broker struct {
	// Addrs are the bootstrap addresses of a real cluster; empty for in-process.
	Addrs []string
}

// InProcess returns the in-process broker.
func InProcess() Broker { return Broker{} }

// Real returns the real cluster at addrs.
func Real(addrs []string) Broker { return Broker{Addrs: addrs} }

// Name is "in-process" or "real".
func (b Broker) Name() string {
	if len(b.Addrs) == 0 {
		return "in-process"
	}
	return "real"
}

// topicSet names the topics and consumer group of one trial; they are unique,
// so that trials on a real cluster never see each other's records.
type topicSet struct {
	orders, outcomes, deadLetters, group string
	// budget is the topic on which instances share Webex pauses.
	budget     string
	partitions int
}

func newTopicSet(scenario, consumer string, partitions int) topicSet {
	var b [4]byte
	_, _ = rand.Read(b[:])
	prefix := fmt.Sprintf("bench.%s.%s.%s", scenario, strings.ReplaceAll(consumer, " ", "-"), hex.EncodeToString(b[:]))
	return topicSet{
		orders:      prefix + ".orders",
		outcomes:    prefix + ".outcomes",
		deadLetters: prefix + ".dlt",
		group:       prefix + ".group",
		budget:      prefix + ".budget",
		partitions:  partitions,
	}
}

// cluster is a broker holding one trial's topics.
type cluster struct {
	addrs []string
	close func()
}

// open makes the trial's topics and returns where they are. Closing the
// cluster deletes them (real) or stops the broker (in-process).
func (b Broker) open(ctx context.Context, ts topicSet) (cluster, error) {
	if len(b.Addrs) == 0 {
		return openInProcess(ctx, ts)
	}
	if err := createTopics(ctx, b.Addrs, ts); err != nil {
		return cluster{}, err
	}
	return cluster{addrs: b.Addrs, close: func() { deleteTopics(b.Addrs, ts) }}, nil
}

// openInProcess starts kfake with the trial's topics. Its goroutines carry the
// profiler label component=broker.
func openInProcess(ctx context.Context, ts topicSet) (cluster, error) {
	var (
		c   *kfake.Cluster
		err error
	)
	pprof.Do(ctx, pprof.Labels("component", "broker"), func(context.Context) {
		c, err = kfake.NewCluster(
			kfake.NumBrokers(1),
			kfake.SeedTopics(int32(ts.partitions), ts.orders, ts.outcomes),
			kfake.SeedTopics(1, ts.deadLetters, ts.budget),
		)
	})
	if err != nil {
		return cluster{}, fmt.Errorf("starting the in-process broker: %w", err)
	}
	return cluster{addrs: c.ListenAddrs(), close: c.Close}, nil
}

// createTopics creates the trial's topics on a real cluster and waits until
// every partition has a leader.
func createTopics(ctx context.Context, addrs []string, ts topicSet) error {
	c := &kafka.Client{Addr: kafka.TCP(addrs...), Timeout: 20 * time.Second}
	specs := []kafka.TopicConfig{
		{Topic: ts.orders, NumPartitions: ts.partitions, ReplicationFactor: 1},
		{Topic: ts.outcomes, NumPartitions: ts.partitions, ReplicationFactor: 1},
		{Topic: ts.deadLetters, NumPartitions: 1, ReplicationFactor: 1},
		{Topic: ts.budget, NumPartitions: 1, ReplicationFactor: 1,
			ConfigEntries: []kafka.ConfigEntry{{ConfigName: "cleanup.policy", ConfigValue: "compact"}}},
	}
	resp, err := c.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: specs})
	if err != nil {
		return fmt.Errorf("creating topics %s.*: %w", strings.TrimSuffix(ts.orders, ".orders"), err)
	}
	for _, s := range specs {
		if err := resp.Errors[s.Topic]; err != nil {
			return fmt.Errorf("creating topic %s: %w", s.Topic, err)
		}
		if err := waitForLeaders(ctx, c, s.Topic, s.NumPartitions); err != nil {
			return err
		}
	}
	return nil
}

// waitForLeaders waits until every partition of topic has a leader, so that the
// first writes do not fail while the topic is being set up.
func waitForLeaders(ctx context.Context, c *kafka.Client, topic string, partitions int) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		md, err := c.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
		if err == nil && leadersReady(md, partitions) {
			return nil
		}
		if err == nil {
			err = errors.New("partitions without a leader")
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the leaders of %s: %w", topic, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func leadersReady(md *kafka.MetadataResponse, partitions int) bool {
	if len(md.Topics) != 1 || md.Topics[0].Error != nil || len(md.Topics[0].Partitions) != partitions {
		return false
	}
	for _, p := range md.Topics[0].Partitions {
		if p.Error != nil || p.Leader.Host == "" {
			return false
		}
	}
	return true
}

// deleteTopics deletes the trial's topics, best effort: a leftover topic has a
// unique name and harms nothing.
func deleteTopics(addrs []string, ts topicSet) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := &kafka.Client{Addr: kafka.TCP(addrs...), Timeout: 20 * time.Second}
	_, _ = c.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: []string{ts.orders, ts.outcomes, ts.deadLetters, ts.budget}})
}
