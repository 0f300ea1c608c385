package schemas

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/acme-sp/wholesale-provisioner/internal/strictjson"
)

// FollowUpSchemaVersion is the version of the follow-up record.
const FollowUpSchemaVersion = 1

// FollowUp is the value of a record of the follow-up topic (compacted, keyed
// like the order, on the order's partition): an order whose subscriber waits
// on its end user, followed until it leaves that state. Everything needed to
// answer the order then is in it, so that an instance that takes the
// partition over after a crash can.
type FollowUp struct {
	SchemaVersion int `json:"schemaVersion"`
	// OrderID and PendingEventID are the order's and its pending_user_action
	// outcome's; the final outcome's event id derives from the latter.
	OrderID        string `json:"orderId"`
	PendingEventID string `json:"pendingEventId"`
	// Action, CustomerID, Email and OrderOccurredAt are copied from the order.
	Action          Action    `json:"action"`
	CustomerID      string    `json:"customerId"`
	Email           string    `json:"email"`
	OrderOccurredAt time.Time `json:"orderOccurredAt"`
	// Subscriber is the subscriber as the order left it (pending_*).
	Subscriber SubscriberRef `json:"subscriber"`
	// Since is when the order was answered pending; Deadline is when the wait
	// ends with a failed outcome (pending_timeout).
	Since    time.Time `json:"since"`
	Deadline time.Time `json:"deadline"`
	// ConsentMoveSentAt is when the consent move email was sent again (nil: not yet).
	ConsentMoveSentAt *time.Time `json:"consentMoveSentAt,omitempty"`
	// Attempts counts the Webex calls spent on the order so far.
	Attempts int `json:"attempts"`
	// Source is the order's record, for the dead letter of a wait that fails.
	Source Source `json:"source"`
}

// followUpLimits bound a follow-up record: it nests like a dead letter.
var followUpLimits = strictjson.Limits{MaxDepth: 16, MaxNumberLen: 32}

// DecodeFollowUp reads a follow-up record's value. Anyone who may write to
// the topic can put anything there: the value is bounded before it is
// decoded, and a record without the order's identity is refused.
func DecodeFollowUp(value []byte) (FollowUp, error) {
	var f FollowUp
	if err := strictjson.Check(value, followUpLimits); err != nil {
		return f, fmt.Errorf("the value is not a follow-up record: %w", err)
	}
	if err := json.Unmarshal(value, &f); err != nil {
		return FollowUp{}, fmt.Errorf("the value is not a follow-up record: %w", err)
	}
	switch {
	case f.SchemaVersion != FollowUpSchemaVersion:
		return FollowUp{}, fmt.Errorf("the follow-up record has schemaVersion %d, want %d", f.SchemaVersion, FollowUpSchemaVersion)
	case f.OrderID == "" || f.PendingEventID == "" || f.Subscriber.ID == "":
		return FollowUp{}, errors.New("the follow-up record lacks its order id, pending event id or subscriber id")
	case f.Deadline.IsZero() || f.Since.IsZero():
		return FollowUp{}, errors.New("the follow-up record lacks its since or deadline")
	}
	return f, nil
}
