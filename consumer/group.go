package consumer

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"
	"github.com/segmentio/kafka-go/protocol/consumer"
	"github.com/segmentio/kafka-go/protocol/heartbeat"
	"github.com/segmentio/kafka-go/protocol/joingroup"
)

// The group membership is spoken here, through kafka.Client, rather than by
// kafka.ConsumerGroup, for three things that type cannot do: carry a group
// instance id (KIP-345 static membership), keep its member id across a lost
// coordinator (kafka.ConsumerGroup forgets it, so its rejoin waits out its own
// old session), and keep heartbeating while a revoked generation drains (the
// classic protocol expels a member that is silent for the session timeout even
// during a rebalance). Fetching stays with kafka.Reader, one per partition.

// cooperativeProtocol is our assignor: it gives members back the partitions
// they hold (sent as the subscription's OwnedPartitions) where balance
// allows, and gives a partition that must move to nobody until its owner has
// released it (KIP-429's incremental cooperative rebalancing). "range" is
// offered as well, so that a group of this and an older version of the
// service (kafka.ConsumerGroup's range) still forms during an upgrade.
const cooperativeProtocol = "provisioner-cooperative-sticky"

// errFenced is the end of a generation whose group instance id another
// process now holds: this one must stop, not rejoin.
var errFenced = errors.New("another process joined the consumer group with this group instance id")

// group is this process's membership of the consumer group.
type group struct {
	client     *kafka.Client
	id         string
	instanceID string
	topic      string
	session    time.Duration
	rebalance  time.Duration
	heartbeat  time.Duration
	log        zerolog.Logger

	memberID string // kept across generations and outages; reset only when the coordinator forgets it
	owned    []int  // the last generation's partitions, offered to the assignor
}

// generation is one assignment of partitions to this member. Its context ends
// when the group rebalances, the member is expelled or fenced, or no
// heartbeat was answered for a whole session; the heartbeat goes on until
// release, so that the member stays in the group while it drains.
type generation struct {
	ID       int32
	MemberID string
	// Protocol is the assignor the group chose (see cooperative).
	Protocol string
	// Assigned maps each assigned partition to the offset to start from
	// (used for the partitions this member did not hold already).
	Assigned map[int]int64

	g      *group
	ctx    context.Context
	end    context.CancelCauseFunc
	beat   chan struct{} // closed by release: the heartbeat stops
	beaten sync.WaitGroup
	once   sync.Once
}

// cooperative says whether members keep their partitions through a
// rebalance: true on our assignor, false on range.
func (gen *generation) cooperative() bool { return gen.Protocol == cooperativeProtocol }

// Done is closed when the generation ends.
func (gen *generation) Done() <-chan struct{} { return gen.ctx.Done() }

// release stops the generation's heartbeat.
func (gen *generation) release() {
	gen.once.Do(func() {
		gen.end(nil)
		close(gen.beat)
		gen.beaten.Wait()
	})
}

// CommitOffsets commits the next offset to read of each partition, as a member
// of this generation: the coordinator refuses it from a member it expelled or
// fenced, so a zombie cannot move the group's offsets.
func (gen *generation) CommitOffsets(ctx context.Context, offsets map[int]int64) error {
	req := &kafka.OffsetCommitRequest{
		GroupID:      gen.g.id,
		GenerationID: int(gen.ID),
		MemberID:     gen.MemberID,
		InstanceID:   gen.g.instanceID,
		Topics:       map[string][]kafka.OffsetCommit{},
	}
	for p, o := range offsets {
		req.Topics[gen.g.topic] = append(req.Topics[gen.g.topic], kafka.OffsetCommit{Partition: p, Offset: o})
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	res, err := gen.g.client.OffsetCommit(ctx, req)
	if err != nil {
		return err
	}
	for _, p := range res.Topics[gen.g.topic] {
		if p.Error != nil {
			if errors.Is(p.Error, kafka.FencedInstanceID) {
				gen.end(errFenced)
			}
			return fmt.Errorf("committing partition %d: %w", p.Partition, p.Error)
		}
	}
	return nil
}

// join joins the group, runs the assignor when this member leads, and returns
// the new generation with its start offsets. An error leaves the member id as
// it was unless the coordinator no longer knows it.
func (g *group) join(ctx context.Context) (*generation, error) {
	for {
		res, err := g.joinGroup(ctx)
		if err != nil {
			return nil, err
		}
		switch code := kafka.Error(res.ErrorCode); {
		case code == kafka.MemberIDRequired: // KIP-394: a dynamic member joins twice
			g.memberID = res.MemberID
			continue
		case code == kafka.UnknownMemberId:
			g.memberID = ""
			continue
		case code == kafka.FencedInstanceID:
			return nil, errFenced
		case code != 0:
			return nil, fmt.Errorf("joining the consumer group: %w", code)
		}
		g.memberID = res.MemberID
		var plan []kafka.SyncGroupRequestAssignment
		if res.LeaderID == res.MemberID {
			if plan, err = g.assign(ctx, res); err != nil {
				return nil, err
			}
		}
		sctx, cancel := context.WithTimeout(ctx, g.rebalance+10*time.Second)
		sres, err := g.client.SyncGroup(sctx, &kafka.SyncGroupRequest{
			GroupID:         g.id,
			GenerationID:    int(res.GenerationID),
			MemberID:        g.memberID,
			GroupInstanceID: g.instanceID,
			ProtocolType:    "consumer",
			ProtocolName:    res.ProtocolName,
			Assignments:     plan,
		})
		cancel()
		if err != nil {
			return nil, err
		}
		switch {
		case errors.Is(sres.Error, kafka.RebalanceInProgress):
			continue
		case errors.Is(sres.Error, kafka.UnknownMemberId):
			g.memberID = ""
			continue
		case errors.Is(sres.Error, kafka.FencedInstanceID):
			return nil, errFenced
		case sres.Error != nil:
			return nil, fmt.Errorf("syncing the consumer group: %w", sres.Error)
		}
		parts := sres.Assignment.AssignedPartitions[g.topic]
		starts, err := g.startOffsets(ctx, parts)
		if err != nil {
			return nil, err
		}
		g.owned = slices.Clone(parts)
		gctx, end := context.WithCancelCause(context.WithoutCancel(ctx))
		gen := &generation{ID: res.GenerationID, MemberID: g.memberID, Protocol: res.ProtocolName, Assigned: starts, g: g, ctx: gctx, end: end, beat: make(chan struct{})}
		gen.beaten.Add(1)
		go func() {
			defer gen.beaten.Done()
			g.heartbeatLoop(gen)
		}()
		return gen, nil
	}
}

func (g *group) joinGroup(ctx context.Context) (*joingroup.Response, error) {
	sub, err := protocol.Marshal(consumer.MaxVersionSupported, consumer.Subscription{
		Version:         consumer.MaxVersionSupported,
		Topics:          []string{g.topic},
		OwnedPartitions: []consumer.TopicPartition{{Topic: g.topic, Partitions: int32s(g.owned)}},
	})
	if err != nil {
		return nil, err
	}
	// The broker holds a JoinGroup until every member has rejoined, at most
	// the rebalance timeout.
	ctx, cancel := context.WithTimeout(ctx, g.rebalance+10*time.Second)
	defer cancel()
	m, err := g.client.Transport.RoundTrip(ctx, g.client.Addr, &joingroup.Request{
		GroupID:            g.id,
		SessionTimeoutMS:   int32(g.session.Milliseconds()),
		RebalanceTimeoutMS: int32(g.rebalance.Milliseconds()),
		MemberID:           g.memberID,
		GroupInstanceID:    g.instanceID,
		ProtocolType:       "consumer",
		Protocols: []joingroup.RequestProtocol{
			{Name: cooperativeProtocol, Metadata: sub},
			{Name: kafka.RangeGroupBalancer{}.ProtocolName(), Metadata: sub},
		},
	})
	if err != nil {
		return nil, err
	}
	res, ok := m.(*joingroup.Response)
	if !ok {
		return nil, fmt.Errorf("joining the consumer group: unexpected answer %T", m)
	}
	return res, nil
}

// assign is the leader's work: the plan of the whole group.
func (g *group) assign(ctx context.Context, res *joingroup.Response) ([]kafka.SyncGroupRequestAssignment, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	md, err := g.client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{g.topic}})
	if err != nil {
		return nil, fmt.Errorf("reading the topic's partitions: %w", err)
	}
	var partitions []int
	for _, t := range md.Topics {
		if t.Name != g.topic {
			continue
		}
		if t.Error != nil {
			return nil, fmt.Errorf("reading the topic's partitions: %w", t.Error)
		}
		for _, p := range t.Partitions {
			partitions = append(partitions, p.ID)
		}
	}
	members := make([]member, 0, len(res.Members))
	for _, m := range res.Members {
		sub := decodeSubscription(m.Metadata)
		members = append(members, member{id: m.MemberID, topics: sub.Topics, owned: ownedOf(sub, g.topic)})
	}
	var plan map[string][]int
	switch res.ProtocolName {
	case cooperativeProtocol:
		plan = withhold(assignSticky(members, partitions), members)
	default:
		gm := make([]kafka.GroupMember, 0, len(members))
		for _, m := range members {
			gm = append(gm, kafka.GroupMember{ID: m.id, Topics: m.topics})
		}
		kp := make([]kafka.Partition, 0, len(partitions))
		for _, p := range partitions {
			kp = append(kp, kafka.Partition{Topic: g.topic, ID: p})
		}
		plan = map[string][]int{}
		for id, topics := range (kafka.RangeGroupBalancer{}).AssignGroups(gm, kp) {
			plan[id] = topics[g.topic]
		}
	}
	out := make([]kafka.SyncGroupRequestAssignment, 0, len(members))
	for _, m := range members {
		out = append(out, kafka.SyncGroupRequestAssignment{
			MemberID:   m.id,
			Assignment: kafka.GroupProtocolAssignment{AssignedPartitions: map[string][]int{g.topic: plan[m.id]}},
		})
	}
	return out, nil
}

// decodeSubscription reads a member's subscription at the version it was
// written in, so that members of older clients (version 0, no owned
// partitions) and newer ones (versions 2 and 3 add fields after ours) decode.
func decodeSubscription(b []byte) consumer.Subscription {
	var sub consumer.Subscription
	if len(b) < 2 {
		return sub
	}
	v := min(int16(binary.BigEndian.Uint16(b)), consumer.MaxVersionSupported)
	if protocol.Unmarshal(b, v, &sub) != nil && v > 0 {
		sub = consumer.Subscription{}
		_ = protocol.Unmarshal(b, 0, &sub)
	}
	return sub
}

func ownedOf(sub consumer.Subscription, topic string) []int {
	var out []int
	for _, tp := range sub.OwnedPartitions {
		if tp.Topic == topic {
			for _, p := range tp.Partitions {
				out = append(out, int(p))
			}
		}
	}
	return out
}

func (g *group) startOffsets(ctx context.Context, parts []int) (map[int]int64, error) {
	starts := make(map[int]int64, len(parts))
	if len(parts) == 0 {
		return starts, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	res, err := g.client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: g.id, Topics: map[string][]int{g.topic: parts}})
	if err != nil {
		return nil, fmt.Errorf("reading the committed offsets: %w", err)
	}
	if res.Error != nil {
		return nil, fmt.Errorf("reading the committed offsets: %w", res.Error)
	}
	for _, p := range parts {
		starts[p] = kafka.FirstOffset
	}
	for _, p := range res.Topics[g.topic] {
		if p.Error != nil {
			return nil, fmt.Errorf("reading the committed offset of partition %d: %w", p.Partition, p.Error)
		}
		if p.CommittedOffset >= 0 {
			starts[p.Partition] = p.CommittedOffset
		}
	}
	return starts, nil
}

// heartbeatLoop keeps the member in the group until the generation is
// released. It ends the generation on a rebalance, on an expulsion, on
// fencing, or when no heartbeat was answered for a whole session (the
// coordinator has then expelled us, or will: our partitions may be another
// member's already).
func (g *group) heartbeatLoop(gen *generation) {
	t := time.NewTicker(g.heartbeat)
	defer t.Stop()
	answered := time.Now()
	for {
		select {
		case <-gen.beat:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), max(g.heartbeat, time.Second))
		m, err := g.client.Transport.RoundTrip(ctx, g.client.Addr, &heartbeatRequest{GroupID: g.id, GenerationID: gen.ID, MemberID: gen.MemberID, GroupInstanceID: g.instanceID})
		cancel()
		if err == nil {
			answered = time.Now()
			if res, ok := m.(*heartbeat.Response); ok {
				err = heartbeatError(res)
			} else {
				err = fmt.Errorf("heartbeat: unexpected answer %T", m)
			}
		}
		switch {
		case err == nil:
		case errors.Is(err, kafka.RebalanceInProgress):
			// Still a heartbeat: the member stays while it drains.
			gen.end(kafka.RebalanceInProgress)
		case errors.Is(err, kafka.FencedInstanceID):
			gen.end(errFenced)
			return
		case errors.Is(err, kafka.UnknownMemberId), errors.Is(err, kafka.IllegalGeneration):
			gen.end(err)
			return
		case time.Since(answered) >= g.session:
			gen.end(fmt.Errorf("no heartbeat answered for the session timeout (%v): %w", g.session, err))
			return
		}
	}
}

// heartbeatRequest is kafka-go's heartbeat request, routed to the group's
// coordinator: heartbeat.Request lacks the Group method kafka.Transport routes
// by, so kafka.Client.Heartbeat reaches any broker (NOT_COORDINATOR on a
// cluster of several). Same fields, so kafka-go's encoder of the registered
// type serves it.
type heartbeatRequest heartbeat.Request

func (r *heartbeatRequest) ApiKey() protocol.ApiKey { return protocol.Heartbeat }
func (r *heartbeatRequest) Group() string           { return r.GroupID }

// heartbeatError reads the error of a heartbeat answer. kafka-go's
// heartbeat.Response (v0.4.51) declares ErrorCode before ThrottleTimeMs,
// but from version 1 on the broker writes the throttle first: the code then
// arrives in the low 16 bits of ThrottleTimeMs, and ErrorCode holds the
// throttle's high bits (zero below 65 s). A version 0 answer has no throttle
// and its code where declared. kafka.Client.Heartbeat never reports an error
// to a member of a newer broker, a rebalance included. The tests of members
// joining and leaving fail if a kafka-go upgrade changes this.
func heartbeatError(r *heartbeat.Response) error {
	code := r.ErrorCode
	if code == 0 {
		code = int16(uint32(r.ThrottleTimeMs) & 0xffff)
	}
	if code == 0 {
		return nil
	}
	return kafka.Error(code)
}

// leave tells the group this member goes, so its partitions move at once
// rather than at its session timeout. A static member leaves too: a graceful
// stop is a pod going away (a rollout, a scale-down), and its successor may
// have another name; static membership pays off when the process dies
// without leaving and comes back under the same id (a container restarted
// in its pod after an OOM kill), which takes its partitions back at once.
func (g *group) leave() {
	if g.memberID == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := g.client.LeaveGroup(ctx, &kafka.LeaveGroupRequest{GroupID: g.id,
		Members: []kafka.LeaveGroupRequestMember{{ID: g.memberID, GroupInstanceID: g.instanceID}}})
	if err == nil {
		err = res.Error
	}
	if err != nil {
		g.log.Warn().Err(err).Msg("leaving the consumer group; the others take its partitions at its session timeout")
	}
}

// member is one member's subscription as the assignor sees it.
type member struct {
	id     string
	topics []string
	owned  []int
}

// assignSticky spreads partitions evenly (counts differ by at most one) and
// gives each member back what it owned where that keeps the balance: a
// rebalance then moves only the partitions it must. Deterministic for equal
// input.
func assignSticky(members []member, partitions []int) map[string][]int {
	plan := make(map[string][]int, len(members))
	if len(members) == 0 {
		return plan
	}
	members = slices.Clone(members)
	// Members holding more go first, so that they are the ones allowed one
	// partition above the floor.
	sort.SliceStable(members, func(i, j int) bool {
		if len(members[i].owned) != len(members[j].owned) {
			return len(members[i].owned) > len(members[j].owned)
		}
		return members[i].id < members[j].id
	})
	exists := make(map[int]bool, len(partitions))
	for _, p := range partitions {
		exists[p] = true
	}
	floor, extra := len(partitions)/len(members), len(partitions)%len(members)
	quota := make(map[string]int, len(members))
	for i, m := range members {
		quota[m.id] = floor
		if i < extra {
			quota[m.id]++
		}
	}
	taken := make(map[int]bool, len(partitions))
	for _, m := range members {
		owned := slices.Clone(m.owned)
		slices.Sort(owned)
		for _, p := range owned {
			if exists[p] && !taken[p] && len(plan[m.id]) < quota[m.id] {
				plan[m.id] = append(plan[m.id], p)
				taken[p] = true
			}
		}
	}
	free := make([]int, 0, len(partitions))
	for _, p := range partitions {
		if !taken[p] {
			free = append(free, p)
		}
	}
	slices.Sort(free)
	for _, m := range members {
		for len(plan[m.id]) < quota[m.id] && len(free) > 0 {
			plan[m.id] = append(plan[m.id], free[0])
			free = free[1:]
		}
		slices.Sort(plan[m.id])
	}
	return plan
}

// withhold takes out of plan every partition that a member other than the
// one it is given to still holds, or that two members claim: its owner
// releases it first, and rejoins, and the next rebalance gives it. No
// partition is then handled by two members at once.
func withhold(plan map[string][]int, members []member) map[string][]int {
	owner := map[int]string{}
	claims := map[int]int{}
	for _, m := range members {
		for _, p := range m.owned {
			owner[p] = m.id
			claims[p]++
		}
	}
	for id, ps := range plan {
		kept := ps[:0]
		for _, p := range ps {
			if claims[p] == 0 || (claims[p] == 1 && owner[p] == id) {
				kept = append(kept, p)
			}
		}
		plan[id] = kept
	}
	return plan
}

func int32s(ps []int) []int32 {
	out := make([]int32, len(ps))
	for i, p := range ps {
		out[i] = int32(p)
	}
	return out
}
