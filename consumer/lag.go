package consumer

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/segmentio/kafka-go"
)

// PartitionLag is one partition's position, the way lag exporters compute it:
// the end offset minus the group's committed offset.
type PartitionLag struct {
	Partition int
	// End is the offset the next record will get (the high watermark).
	End int64
	// Committed is the group's committed offset, or -1 when it has none.
	Committed int64
	// Lag counts the records not yet committed. With no committed offset it
	// counts from the start of the log.
	Lag int64
}

// Lag returns the lag of group on every partition of topic, sorted by partition.
// c must have its Addr set to a bootstrap broker.
func Lag(ctx context.Context, c *kafka.Client, group, topic string) ([]PartitionLag, error) {
	md, err := c.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return nil, fmt.Errorf("reading metadata of %s: %w", topic, err)
	}
	if len(md.Topics) != 1 || md.Topics[0].Error != nil {
		if len(md.Topics) == 1 {
			return nil, fmt.Errorf("reading metadata of %s: %w", topic, md.Topics[0].Error)
		}
		return nil, fmt.Errorf("reading metadata of %s: topic not found", topic)
	}
	var parts []int
	var reqs []kafka.OffsetRequest
	for _, p := range md.Topics[0].Partitions {
		parts = append(parts, p.ID)
		reqs = append(reqs, kafka.FirstOffsetOf(p.ID), kafka.LastOffsetOf(p.ID))
	}
	lo, err := c.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		return nil, fmt.Errorf("listing offsets of %s: %w", topic, err)
	}
	of, err := c.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: parts}})
	if err != nil {
		return nil, fmt.Errorf("fetching committed offsets of group %s: %w", group, err)
	}
	if of.Error != nil {
		return nil, fmt.Errorf("fetching committed offsets of group %s: %w", group, of.Error)
	}
	committed := map[int]int64{}
	for _, p := range of.Topics[topic] {
		if p.Error != nil {
			return nil, fmt.Errorf("fetching committed offset of %s/%d: %w", topic, p.Partition, p.Error)
		}
		committed[p.Partition] = p.CommittedOffset
	}
	out := make([]PartitionLag, 0, len(parts))
	for _, p := range lo.Topics[topic] {
		if p.Error != nil {
			return nil, fmt.Errorf("listing offsets of %s/%d: %w", topic, p.Partition, p.Error)
		}
		pl := PartitionLag{Partition: p.Partition, End: p.LastOffset, Committed: -1}
		if c, ok := committed[p.Partition]; ok {
			pl.Committed = c
		}
		if pl.Committed >= 0 {
			pl.Lag = pl.End - pl.Committed
		} else {
			pl.Lag = pl.End - p.FirstOffset
		}
		out = append(out, pl)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Partition < out[j].Partition })
	return out, nil
}

// CaughtUp returns nil when no partition of ls lags, else an error naming the
// first that does. It reads the lag, not committed == end: a partition that
// never held a record has no committed offset and nothing to commit.
func CaughtUp(ls []PartitionLag) error {
	for _, l := range ls {
		if l.Lag != 0 {
			return fmt.Errorf("partition %d: committed %d, end %d", l.Partition, l.Committed, l.End)
		}
	}
	return nil
}

// WaitCaughtUp reads the lag of group on topic every 100 ms until no
// partition lags, and returns it; when ctx ends first, it returns the last
// lag read with the reason. The demo, the benchmarks and the tests wait so
// for the commits that follow the last outcome.
func WaitCaughtUp(ctx context.Context, c *kafka.Client, group, topic string) ([]PartitionLag, error) {
	for {
		ls, err := Lag(ctx, c, group, topic)
		if err == nil {
			err = CaughtUp(ls)
		}
		if err == nil {
			return ls, nil
		}
		select {
		case <-ctx.Done():
			return ls, fmt.Errorf("waiting for the group to catch up: %w", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
