package provisioning

import (
	"context"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/sync/singleflight"
)

// customerBook is what this process knows of customers, shared by the
// customer orders and the subscriber orders that wait for them: the Webex
// id of each external id, the last customer order of each, and a customer's
// status read within the last moment. A hundred subscriber orders waiting
// for one customer then cost one read per poll, not a hundred; and every
// map is bounded, whatever the number of customers.
type customerBook struct {
	ids    *lru.Cache[string, string]             // external id → Webex id
	orders *lru.Cache[string, customerOrderState] // external id → its last customer order
	// ordered maps a Webex id to the external id of its customer orders,
	// so that a subscriber order naming the Webex id finds a running
	// customer order in one lookup.
	ordered *lru.Cache[string, string]

	fresh    time.Duration                    // how long a read status is reused
	statuses *lru.Cache[string, readCustomer] // Webex id → its last read
	calls    singleflight.Group
	now      func() time.Time
}

// customerOrderState is the last customer order this process carried out for a customer.
type customerOrderState struct {
	orderID    string
	customerID string
	running    bool
	// failed says that the order ended without a customer Webex provisions:
	// the subscribers waiting for it would wait for nothing.
	failed bool
	// ended is when the order ended (zero while it runs).
	ended time.Time
}

// changing says that the order runs, or ended within d: Webex's answers
// about its customer may be a moment older than what it did.
func (st customerOrderState) changing(now time.Time, d time.Duration) bool {
	return st.running || now.Sub(st.ended) < d
}

// readCustomer is one read of a customer; its Customer is never modified.
type readCustomer struct {
	c  *Customer // nil: Webex has no such customer
	at time.Time
}

func newCustomerBook(size int, fresh time.Duration) *customerBook {
	b := &customerBook{fresh: fresh, now: time.Now}
	// lru.New fails only for a size below 1, which the config rules out.
	b.ids, _ = lru.New[string, string](size)
	b.orders, _ = lru.New[string, customerOrderState](size)
	b.ordered, _ = lru.New[string, string](size)
	b.statuses, _ = lru.New[string, readCustomer](size)
	return b
}

// begin records that a customer order for the external id is running.
func (b *customerBook) begin(externalID, orderID string) {
	id, _ := b.ids.Peek(externalID)
	b.orders.Add(externalID, customerOrderState{orderID: orderID, customerID: id, running: true})
	if id != "" {
		b.ordered.Add(id, externalID)
	}
}

// end records how the customer order ended, and what it learnt.
func (b *customerBook) end(externalID, orderID string, c *Customer, failed bool) {
	st := customerOrderState{orderID: orderID, failed: failed, ended: b.now()}
	if c != nil && c.ID != "" {
		st.customerID = c.ID
		b.learn(externalID, c)
		b.ordered.Add(c.ID, externalID)
	}
	b.orders.Add(externalID, st)
}

// order returns the last customer order for the external id, if any.
func (b *customerBook) order(externalID string) (customerOrderState, bool) {
	return b.orders.Get(externalID)
}

// orderOf returns the last customer order for the Webex id, if any.
func (b *customerBook) orderOf(customerID string) (customerOrderState, bool) {
	ext, ok := b.ordered.Get(customerID)
	if !ok {
		return customerOrderState{}, false
	}
	st, ok := b.orders.Peek(ext)
	return st, ok && st.customerID == customerID
}

// learn records what a read of the customer said.
func (b *customerBook) learn(externalID string, c *Customer) {
	if externalID != "" && c.ID != "" {
		b.ids.Add(externalID, c.ID)
	}
	if st, ok := b.orders.Peek(externalID); ok && st.running && st.customerID != c.ID {
		// The subscriber orders that name the customer by Webex id now
		// see that its order is running.
		st.customerID = c.ID
		b.orders.Add(externalID, st)
		b.ordered.Add(c.ID, externalID)
	}
	if c.ID != "" {
		cc := *c
		b.statuses.Add(c.ID, readCustomer{c: &cc, at: b.now()})
	}
}

// forget drops a removed customer, so that no order uses its id again.
func (b *customerBook) forget(externalID, customerID string) {
	b.ids.Remove(externalID)
	if customerID != "" {
		b.statuses.Add(customerID, readCustomer{at: b.now()})
	}
}

// shared runs fetch once for all callers asking for key at the same time.
// Each caller stops waiting when its own ctx ends; the call itself runs on
// without the first caller's cancellation, bounded by the client's request
// timeout, so that one order's end does not fail the others.
func (b *customerBook) shared(ctx context.Context, key string, fetch func(context.Context) (*Customer, error)) (*Customer, error) {
	ch := b.calls.DoChan(key, func() (any, error) {
		return fetch(context.WithoutCancel(ctx))
	})
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case res := <-ch:
		c, _ := res.Val.(*Customer)
		return c, res.Err
	}
}

// byExternalID returns the customer with the external id, nil when Webex
// has none; unless fresh, a recent read of it is reused.
// Each call made is counted in calls.
func (b *customerBook) byExternalID(ctx context.Context, api *Client, externalID string, fresh bool, calls *int) (*Customer, error) {
	if id, ok := b.ids.Get(externalID); ok && !fresh {
		if rc, ok := b.recent(id); ok {
			return rc.c, nil
		}
	}
	*calls++
	c, err := b.shared(ctx, "find\x00"+externalID, func(ctx context.Context) (*Customer, error) {
		return api.FindCustomer(ctx, externalID)
	})
	if err == nil && c != nil {
		b.learn(externalID, c)
	}
	return c, err
}

// byID returns the customer with the Webex id, nil when Webex has none;
// unless fresh, a recent read of it is reused.
// Each call made is counted in calls.
func (b *customerBook) byID(ctx context.Context, api *Client, id string, fresh bool, calls *int) (*Customer, error) {
	if rc, ok := b.recent(id); ok && !fresh {
		return rc.c, nil
	}
	*calls++
	c, err := b.shared(ctx, "get\x00"+id, func(ctx context.Context) (*Customer, error) {
		c, err := api.GetCustomer(ctx, id)
		if isNotFound(err) {
			return nil, nil
		}
		return &c, err
	})
	switch {
	case err != nil:
	case c == nil:
		b.statuses.Add(id, readCustomer{at: b.now()})
	default:
		b.learn(c.ExternalID, c)
	}
	return c, err
}

// readyID returns the Webex id of the external id when its customer was
// last seen ready, however long ago.
func (b *customerBook) readyID(externalID string) (string, bool) {
	id, ok := b.ids.Get(externalID)
	if !ok {
		return "", false
	}
	rc, ok := b.statuses.Peek(id)
	return id, ok && rc.c != nil && customerReady(rc.c.Status)
}

func (b *customerBook) recent(id string) (readCustomer, bool) {
	rc, ok := b.statuses.Get(id)
	if !ok || b.now().Sub(rc.at) > b.fresh {
		return readCustomer{}, false
	}
	return rc, true
}
