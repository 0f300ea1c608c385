package consumer

import (
	"sort"
	"time"
)

// PartitionStats is the state of one assigned partition.
type PartitionStats struct {
	Partition int
	// Buffered counts fetched records not yet finished.
	Buffered int
	// OldestAge is how long the oldest unfinished record has waited since it
	// was fetched: the head-of-line delay (zero when nothing is pending).
	OldestAge time.Duration
	// Completed is the offset every record before which is finished; Committed
	// is the last offset committed (-1: none by this member).
	Completed int64
	Committed int64
}

// Stats is a snapshot of the consumer's work.
type Stats struct {
	// InFlight counts records inside the handler now.
	InFlight int
	// RetryingKeys counts keys whose first record waits to be retried, and
	// BlockedRecords the records queued behind them.
	RetryingKeys   int
	BlockedRecords int
	Partitions     []PartitionStats
	// Paused is true while a fault that no record can get past (see Handler)
	// stops the consumer from starting records; PausedSince and PauseCause say
	// since when and why.
	Paused      bool
	PausedSince time.Time
	PauseCause  error
	// Joined is true once the consumer is a member of the group with an
	// assignment (possibly empty: more members than partitions).
	Joined bool
}

// Stats returns a snapshot. It is safe to call at any time.
func (c *Consumer) Stats() Stats {
	c.mu.Lock()
	parts := c.parts
	c.mu.Unlock()
	keys, blocked := c.sched.waitingBehindRetries()
	s := Stats{InFlight: int(c.sched.inFlight.Load()), RetryingKeys: keys, BlockedRecords: blocked, Joined: parts != nil}
	s.Paused, s.PausedSince, s.PauseCause = c.sched.gate.state()
	now := time.Now()
	for id, p := range parts {
		n, oldest := p.tracker.pending()
		ps := PartitionStats{Partition: id, Buffered: n}
		if n > 0 {
			ps.OldestAge = now.Sub(oldest)
		}
		ps.Completed, ps.Committed = p.tracker.positions()
		s.Partitions = append(s.Partitions, ps)
	}
	sort.Slice(s.Partitions, func(i, j int) bool { return s.Partitions[i].Partition < s.Partitions[j].Partition })
	return s
}

// logStats logs the head-of-line state every StatsInterval while work is
// pending, so that an operator sees a stuck order before lag alerts fire.
func (c *Consumer) logStats(stop <-chan struct{}) {
	t := time.NewTicker(c.cfg.StatsInterval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		s := c.Stats()
		var buffered int
		var oldest time.Duration
		oldestPart := -1
		for _, p := range s.Partitions {
			buffered += p.Buffered
			if p.OldestAge > oldest {
				oldest, oldestPart = p.OldestAge, p.Partition
			}
		}
		if buffered == 0 {
			continue
		}
		c.log.Info().Int("in_flight", s.InFlight).Int("buffered", buffered).Int("retrying_keys", s.RetryingKeys).
			Int("blocked_records", s.BlockedRecords).Dur("oldest_unfinished_age_ms", oldest).Int("oldest_partition", oldestPart).
			Msg("consumer progress")
	}
}
