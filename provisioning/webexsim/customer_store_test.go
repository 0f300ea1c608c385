package webexsim

import (
	"testing"
	"time"

	"github.com/acme-sp/wholesale-provisioner/provisioning"
)

// TestHoldKeepsTheCustomer checks the lock a subscriber create holds on its
// customer: a customer delete waits for it, then sees the new subscriber.
// Over HTTP the window is too small to hit reliably, hence this test inside
// the package.
func TestHoldKeepsTheCustomer(t *testing.T) {
	s := New(Config{})
	now := time.Now()
	s.customers.insert(&customerRecord{cust: provisioning.Customer{ID: "c1", ExternalID: "e1", Status: provisioning.CustomerProvisioned}}, now)

	// An unknown id holds nothing: a write goes ahead at once.
	if c, release := s.customers.hold("unknown", now); c.known {
		t.Fatalf("hold(unknown) = %+v", c)
	} else {
		inserted := make(chan bool, 1)
		go func() {
			inserted <- s.customers.insert(&customerRecord{cust: provisioning.Customer{ID: "c2", ExternalID: "e2"}}, time.Now())
		}()
		select {
		case <-inserted:
		case <-time.After(5 * time.Second):
			t.Fatal("an insert waited on the hold of an unknown customer")
		}
		release()
	}

	c, release := s.customers.hold("c1", now)
	if !c.known || c.status != provisioning.CustomerProvisioned || c.externalID != "e1" {
		t.Fatalf("hold(c1) = %+v", c)
	}
	done := make(chan changeOutcome, 1)
	go func() {
		_, _, out := s.customers.remove("c1", s.store.subscribersOf, 0, time.Now())
		done <- out
	}()
	select {
	case out := <-done:
		t.Fatalf("the delete went ahead (%v) while a subscriber create held the customer", out)
	case <-time.After(50 * time.Millisecond):
	}
	s.store.insert(&record{key: "u@acme.example", sub: provisioning.Subscriber{ID: "s1", CustomerID: "c1"}})
	release()
	if out := <-done; out != changeHasSubscribers {
		t.Errorf("the delete after the held create: outcome %v, want changeHasSubscribers", out)
	}
}
