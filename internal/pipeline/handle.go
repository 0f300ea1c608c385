package pipeline

import (
	"context"
	"fmt"
	"time"

	"github.com/acme-sp/wholesale-provisioner/provisioning"
	"github.com/acme-sp/wholesale-provisioner/schemas"
)

// handle works out the answer to one record: it reads the order and has the
// workflow carry it out. It sets r.order as soon as the record is decoded,
// so that a later failure or panic can still name the order. A record that
// cannot be carried out is a *schemas.Fault (or an error that has one).
func (p *Pipeline) handle(ctx context.Context, r *job) (answer, error) {
	if err := p.checkSize(r); err != nil {
		return answer{}, err
	}
	o, err := schemas.DecodeOrder(r.msg.Value)
	if err != nil {
		return answer{}, err // an *InvalidOrderError: a Faulter
	}
	r.order = &o
	r.digest, r.digested = orderDigest(o), true
	r.decoded()
	if err := p.checkReuse(r, o.OrderID); err != nil {
		return answer{}, err
	}
	res, err := p.wf.Run(r.logger().WithContext(ctx), o, r.wait)
	if err != nil {
		return answer{}, err
	}
	out := p.outcome(r, o.OrderID, res.Status)
	out.Attempts = res.Attempts
	if res.CustomerID != "" {
		out.CustomerID = res.CustomerID // resolved from customerExternalId
	}
	out.Subscriber = subscriberRef(res)
	out.Precheck = precheckOf(res.Precheck)
	switch res.Status {
	case schemas.StatusUpdated:
		changed := res.Changed
		out.Changed = &changed
	case schemas.StatusRemoved:
		out.AlreadyAbsent = res.AlreadyAbsent
	}
	a := answer{outcome: &out}
	switch res.Status {
	case schemas.StatusPendingUserAction:
		a.followUp = p.followUpOf(r, out)
	case schemas.StatusRemoved:
		if p.follower != nil {
			// Its same key puts it on the partition of the orders it ends.
			p.follower.Supersede(ctx, r.msg.Partition, out.CustomerID, o.Email, o.OrderID)
		}
	}
	return a, nil
}

// subscriberRef is what an outcome says of the result's subscriber; nil
// when there is none (a remove of a subscriber already gone).
func subscriberRef(res provisioning.Result) *schemas.SubscriberRef {
	if res.Subscriber.ID == "" {
		return nil
	}
	return &schemas.SubscriberRef{
		ID:               res.Subscriber.ID,
		PersonID:         res.Subscriber.PersonID,
		WebexStatus:      res.Subscriber.Status,
		Packages:         res.Subscriber.Packages,
		AlreadyExisted:   res.AlreadyExisted,
		FoundByLookup:    res.FoundByLookup,
		PreviousPackages: res.PreviousPackages,
	}
}

// wait is the workflow's wait for this record: its worker slot is given back
// for the time, and taken again before the workflow goes on.
func (r *job) wait(ctx context.Context, d time.Duration) error {
	r.slot.Release()
	if err := provisioning.Sleep(ctx, d); err != nil {
		return err
	}
	return r.slot.Acquire(ctx)
}

// precheckOf is what the outcome says of a passed precheck.
func precheckOf(p *provisioning.PrecheckResponse) *schemas.Precheck {
	if p == nil {
		return nil
	}
	pc := &schemas.Precheck{Message: p.Message}
	for _, in := range p.Info {
		pc.Info = append(pc.Info, schemas.PrecheckInfo{Code: in.InfoCode, Description: in.Description})
	}
	return pc
}

func (p *Pipeline) outcome(r *job, orderID string, status schemas.OutcomeStatus) schemas.Outcome {
	out := schemas.Outcome{
		SchemaVersion: 1,
		EventID:       EventID(orderID, r.contentDigest(), r.replay),
		OrderID:       orderID,
		Status:        status,
		ProcessedAt:   p.cfg.Now().UTC(),
	}
	if o := r.order; o != nil {
		out.Action = o.Action
		out.CustomerID = o.CustomerID
		out.CustomerExternalID = o.CustomerExternalID
		out.Email = o.Email
		t := o.OccurredAt
		out.OrderOccurredAt = &t
	}
	return out
}

func (p *Pipeline) deadLetterOf(r *job, orderID string, f schemas.Fault) *schemas.DeadLetter {
	msg := r.msg
	hs := make([]schemas.Header, 0, len(msg.Headers))
	for _, h := range msg.Headers {
		hs = append(hs, schemas.Header{Key: h.Key, Value: schemas.NewBytes(h.Value)})
	}
	return &schemas.DeadLetter{
		SchemaVersion: 1,
		Reason:        f.Reason,
		ErrorClass:    f.Class,
		Message:       f.Message,
		Step:          f.Step,
		Attempts:      max(1, f.Attempts),
		OrderID:       orderID,
		Failure:       f.Failure,
		FailedAt:      p.cfg.Now().UTC(),
		ConsumerGroup: p.cfg.ConsumerGroup,
		Source: schemas.Source{
			Topic:     msg.Topic,
			Partition: msg.Partition,
			Offset:    msg.Offset,
			Timestamp: msg.Time.UTC(),
			Key:       schemas.NewBytes(msg.Key),
			Value:     schemas.NewBytes(msg.Value),
			Headers:   hs,
		},
	}
}

// checkSize refuses a record larger than MaxRecordBytes before any decoding.
func (p *Pipeline) checkSize(r *job) error {
	if len(r.msg.Value) > p.cfg.MaxRecordBytes {
		return &schemas.Fault{Class: schemas.ErrorClassInvalidInput, Step: schemas.StepDecode, Reason: schemas.ReasonRecordTooLarge,
			Message: fmt.Sprintf("record value of %d bytes exceeds the limit of %d bytes", len(r.msg.Value), p.cfg.MaxRecordBytes)}
	}
	return nil
}

// checkReuse refuses an order id seen before with other content: the
// billing system must send a change under a new order id.
func (p *Pipeline) checkReuse(r *job, orderID string) error {
	if p.seen.conflicts(orderID, r.digest) {
		return &schemas.Fault{Class: schemas.ErrorClassInvalidInput, Step: schemas.StepValidate, Reason: schemas.ReasonDuplicateOrderID,
			Message: "order id " + orderID + " was already used for an order with different content; send changes under a new order id"}
	}
	return nil
}
