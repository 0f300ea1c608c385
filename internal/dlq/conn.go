package dlq

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/segmentio/kafka-go"
)

// Conn says how to reach the Kafka brokers. TLS and SASL plug in here: Dialer
// carries the connections of the partition readers, Transport those of the
// metadata and offset requests and of the writer. The zero values connect in
// plaintext.
type Conn struct {
	// Brokers are the bootstrap addresses (host:port). Required.
	Brokers []string
	// Dialer opens the partition readers' connections. Default kafka.DefaultDialer.
	Dialer *kafka.Dialer
	// Transport carries metadata, offset and produce requests. Default kafka.DefaultTransport.
	Transport kafka.RoundTripper
	// Timeout bounds one metadata or offsets request. Default 10s.
	Timeout time.Duration
}

func (c Conn) validate() error {
	if len(c.Brokers) == 0 {
		return errors.New("no Kafka brokers configured")
	}
	return nil
}

func (c Conn) client() *kafka.Client {
	t := c.Timeout
	if t <= 0 {
		t = 10 * time.Second
	}
	return &kafka.Client{Addr: kafka.TCP(c.Brokers...), Transport: c.Transport, Timeout: t}
}

// partitions returns the partition ids of topic, sorted, or an error saying the
// topic does not exist.
func (c Conn) partitions(ctx context.Context, topic string) ([]int, error) {
	md, err := c.client().Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return nil, fmt.Errorf("reading metadata of topic %s: %w", topic, err)
	}
	if len(md.Topics) != 1 {
		return nil, fmt.Errorf("reading metadata of topic %s: the broker answered for %d topics", topic, len(md.Topics))
	}
	t := md.Topics[0]
	if errors.Is(t.Error, kafka.UnknownTopicOrPartition) {
		return nil, fmt.Errorf("topic %s does not exist on %v", topic, c.Brokers)
	}
	if t.Error != nil {
		return nil, fmt.Errorf("reading metadata of topic %s: %w", topic, t.Error)
	}
	if len(t.Partitions) == 0 {
		return nil, fmt.Errorf("topic %s has no partitions", topic)
	}
	ids := make([]int, 0, len(t.Partitions))
	for _, p := range t.Partitions {
		ids = append(ids, p.ID)
	}
	sort.Ints(ids)
	return ids, nil
}

// listOffsets asks for one offset per partition: kafka.FirstOffset,
// kafka.LastOffset (the end offset) or a timestamp in milliseconds, which
// answers the first offset whose record timestamp is at or after it, or -1.
// Kafka answers one question per partition and request, so each kind of
// offset takes its own request.
func (c Conn) listOffsets(ctx context.Context, topic string, partitions []int, ts int64) (map[int]int64, error) {
	reqs := make([]kafka.OffsetRequest, len(partitions))
	for i, p := range partitions {
		reqs[i] = kafka.OffsetRequest{Partition: p, Timestamp: ts}
	}
	res, err := c.client().ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		return nil, fmt.Errorf("listing offsets of topic %s: %w", topic, err)
	}
	out := make(map[int]int64, len(partitions))
	for _, p := range res.Topics[topic] {
		if p.Error != nil {
			return nil, fmt.Errorf("listing offsets of %s/%d: %w", topic, p.Partition, p.Error)
		}
		switch ts {
		case kafka.FirstOffset:
			out[p.Partition] = p.FirstOffset
		case kafka.LastOffset:
			out[p.Partition] = p.LastOffset
		default:
			out[p.Partition] = -1
			for o := range p.Offsets {
				out[p.Partition] = o
			}
		}
	}
	for _, p := range partitions {
		if _, ok := out[p]; !ok {
			return nil, fmt.Errorf("listing offsets of %s/%d: no answer for the partition", topic, p)
		}
	}
	return out, nil
}
