package schemas

import "time"

// Action says what an order asks for.
type Action string

// The actions an order may name.
const (
	ActionProvision Action = "provision"
	ActionUpdate    Action = "update"
	ActionRemove    Action = "remove"
)

// Order is a subscriber-order event (schema subscriber-order, version 1), as
// published by the service provider's billing system to the orders topic.
type Order struct {
	// SchemaVersion is the version of the subscriber-order schema the event follows (1).
	SchemaVersion int `json:"schemaVersion"`
	// OrderID identifies the order; it is the idempotency key of the whole flow.
	OrderID string `json:"orderId"`
	// Action is what the order asks for.
	Action Action `json:"action"`
	// OccurredAt is when the billing system created the order.
	OccurredAt time.Time `json:"occurredAt"`
	// CustomerID is the Webex Wholesale customer the subscriber belongs to.
	// An order names its customer by CustomerID or by CustomerExternalID.
	CustomerID string `json:"customerId,omitempty"`
	// CustomerExternalID is the billing system's id of the customer, which
	// the workflow resolves to CustomerID.
	CustomerExternalID string `json:"customerExternalId,omitempty"`
	// Email is the subscriber's email address (personal data).
	Email string `json:"email"`
	// Packages holds the Webex Wholesale package to assign (the API accepts one today).
	Packages []string `json:"packages,omitempty"`
	// ProvisioningParameters are passed through to the API. Required for a
	// provision order; nil when the order has none (an update or a remove).
	ProvisioningParameters *ProvisioningParameters `json:"provisioningParameters,omitempty"`
	// CustomerInfo is needed by the precheck when the customer is not provisioned yet.
	CustomerInfo *CustomerInfo `json:"customerInfo,omitempty"`
	// ProvisioningID names the customer template, for the precheck of a new customer.
	ProvisioningID string `json:"provisioningId,omitempty"`
}

// ProvisioningParameters are the subscriber's details passed to the Webex API.
// A calling package (see IsCallingPackage) needs PrimaryPhoneNumber, Extension or both.
type ProvisioningParameters struct {
	// FirstName is the subscriber's first name (personal data).
	FirstName string `json:"firstName,omitempty"`
	// LastName is the subscriber's last name (personal data).
	LastName string `json:"lastName,omitempty"`
	// PrimaryPhoneNumber is the subscriber's phone number, preferably E.164 (personal data).
	PrimaryPhoneNumber string `json:"primaryPhoneNumber,omitempty"`
	// Extension is the subscriber's extension, 2 to 10 digits.
	Extension string `json:"extension,omitempty"`
	// LocationID is the Webex location of the subscriber.
	LocationID string `json:"locationId,omitempty"`
}

// CustomerInfo describes the customer for a precheck of a customer not provisioned yet.
type CustomerInfo struct {
	// PrimaryEmail is the customer's primary email address (personal data).
	PrimaryEmail string `json:"primaryEmail"`
}

// OutcomeStatus is the final answer for one order.
type OutcomeStatus string

// The outcome statuses.
const (
	StatusProvisioned       OutcomeStatus = "provisioned"
	StatusFailed            OutcomeStatus = "failed"
	StatusPendingUserAction OutcomeStatus = "pending_user_action"
	// StatusUpdated answers an update order: the subscriber has the ordered packages.
	StatusUpdated OutcomeStatus = "updated"
	// StatusRemoved answers a remove order: the subscriber is gone.
	StatusRemoved OutcomeStatus = "removed"
)

// FailureReason says why an order failed.
type FailureReason string

// The failure reasons of a failed outcome.
const (
	ReasonPrecheckRejected  FailureReason = "precheck_rejected"
	ReasonAPIRejected       FailureReason = "api_rejected"
	ReasonInvalidOrder      FailureReason = "invalid_order"
	ReasonRetriesExhausted  FailureReason = "retries_exhausted"
	ReasonProvisioningError FailureReason = "provisioning_error"
	// ReasonSubscriberNotFound: an update names a subscriber Webex does not have.
	ReasonSubscriberNotFound FailureReason = "subscriber_not_found"
	// ReasonPendingTimeout: a subscriber waited on its end user past the deadline.
	ReasonPendingTimeout FailureReason = "pending_timeout"
	// ReasonSuperseded: a later order removed a subscriber that waited on its end user.
	ReasonSuperseded FailureReason = "superseded"
	// ReasonCustomerNotReady: the subscriber's customer did not become
	// provisioned within the order's wait (error, review, or never there).
	ReasonCustomerNotReady FailureReason = "customer_not_ready"
	// ReasonCustomerNotFound: a customer order names a customer Webex does not have.
	ReasonCustomerNotFound FailureReason = "customer_not_found"
)

// Outcome is a subscriber-outcome event (schema subscriber-outcome, version 1),
// published once per identifiable order to the outcomes topic.
type Outcome struct {
	// SchemaVersion is OutcomeSchemaVersion.
	SchemaVersion int `json:"schemaVersion"`
	// EventID is a UUID derived from the order, so a redelivered order yields the same id.
	EventID string `json:"eventId"`
	// OrderID is the order's orderId, as read even from an invalid order.
	OrderID string `json:"orderId"`
	// Action is copied from the order when it could be decoded.
	Action Action `json:"action,omitempty"`
	// Status is the final answer for the order.
	Status OutcomeStatus `json:"status"`
	// CustomerID and Email are copied from the order when it could be
	// decoded; CustomerID is the resolved one of an order that named its
	// customer by CustomerExternalID, when it was resolved.
	CustomerID         string `json:"customerId,omitempty"`
	CustomerExternalID string `json:"customerExternalId,omitempty"`
	Email              string `json:"email,omitempty"`
	// Subscriber is set for provisioned and pending_user_action outcomes.
	Subscriber *SubscriberRef `json:"subscriber,omitempty"`
	// Failure is set for failed outcomes.
	Failure *Failure `json:"failure,omitempty"`
	// Precheck is what a passed precheck answered; nil when none passed.
	Precheck *Precheck `json:"precheck,omitempty"`
	// Changed says, for an updated outcome, whether this order changed the
	// subscriber (false: it had the packages already).
	Changed *bool `json:"changed,omitempty"`
	// AlreadyAbsent says, for a removed outcome, that the subscriber was gone
	// before this order (a redelivered remove, say).
	AlreadyAbsent bool `json:"alreadyAbsent,omitempty"`
	// PendingEventID is, on the final outcome of an order that was pending on
	// its end user, the event id of that pending_user_action outcome.
	PendingEventID string `json:"pendingEventId,omitempty"`
	// OrderOccurredAt is copied from the order when it could be read.
	OrderOccurredAt *time.Time `json:"orderOccurredAt,omitempty"`
	// ProcessedAt is when the provisioner reached the outcome.
	ProcessedAt time.Time `json:"processedAt"`
	// Attempts counts the API calls spent on the order.
	Attempts int `json:"attempts"`
}

// SubscriberRef is what the outcome says about the Webex subscriber.
type SubscriberRef struct {
	// ID is the Webex Wholesale subscriber id.
	ID string `json:"id"`
	// PersonID is the Webex person id, set once the subscriber is provisioned.
	PersonID string `json:"personId,omitempty"`
	// WebexStatus is the subscriber status the API last reported; Webex may add
	// statuses, so it is a string rather than an enumeration.
	WebexStatus string `json:"webexStatus"`
	// Packages are the packages the API reports for the subscriber.
	Packages []string `json:"packages,omitempty"`
	// AlreadyExisted is true when the subscriber existed before this order
	// (see the outcome schema for how that is told from a create of this
	// order whose answer was lost).
	AlreadyExisted bool `json:"alreadyExisted"`
	// FoundByLookup is true when a lookup found the subscriber rather than
	// this order's create returning it.
	FoundByLookup bool `json:"foundByLookup,omitempty"`
	// PreviousPackages are, for an update, the packages before it.
	PreviousPackages []string `json:"previousPackages,omitempty"`
}

// Precheck is what Webex's provisioning precheck answered when it passed.
type Precheck struct {
	Message string         `json:"message,omitempty"`
	Info    []PrecheckInfo `json:"info,omitempty"`
}

// PrecheckInfo is one information code of a passed precheck.
type PrecheckInfo struct {
	Code        int    `json:"code"`
	Description string `json:"description,omitempty"`
}

// Failure explains a failed outcome.
type Failure struct {
	// Reason classifies the failure.
	Reason FailureReason `json:"reason"`
	// Message is the human-readable explanation, with no secrets; it must not be empty.
	Message string `json:"message"`
	// HTTPStatus is the status of the API's last answer, when there was one.
	HTTPStatus int `json:"httpStatus,omitempty"`
	// Errors are the error codes and descriptions the API returned.
	Errors []APIError `json:"errors,omitempty"`
	// TrackingID is the Webex trackingId of the failed call; support asks for it.
	TrackingID string `json:"trackingId,omitempty"`
	// CustomerOrderID is, for customer_not_ready, the customer order this
	// service carried out for the customer, when it saw one.
	CustomerOrderID string `json:"customerOrderId,omitempty"`
	// CustomerID is, for customer_not_ready, the customer's Webex id when Webex has it.
	CustomerID string `json:"customerId,omitempty"`
}

// APIError is one Webex error code and its description.
type APIError struct {
	Code        int    `json:"errorCode,omitempty"`
	Description string `json:"description,omitempty"`
}

// DeadLetter is the value of a dead-letter record (schema dead-letter, version 1).
// The record's key is the original key; its headers are the original headers plus
// the context headers (see the producer package). The value repeats that context in
// JSON so that it can be read and replayed without header support.
type DeadLetter struct {
	// SchemaVersion is DeadLetterSchemaVersion.
	SchemaVersion int `json:"schemaVersion"`
	// Reason is a stable, low-cardinality code of lower-case letters, digits and
	// underscores: an InvalidOrderError reason (such as ReasonSchemaViolation)
	// for a record that could not be decoded, or a FailureReason.
	Reason string `json:"reason"`
	// ErrorClass is ErrorClassPermanent, ErrorClassTransient (retries exhausted)
	// or ErrorClassInvalidInput (see fault.go).
	ErrorClass string `json:"errorClass"`
	// Message is the human-readable error, with no secrets.
	Message string `json:"message"`
	// Step is the processing step that failed (see the Step* constants).
	Step string `json:"step"`
	// Attempts counts the attempts made before giving up.
	Attempts int `json:"attempts"`
	// OrderID is set when the order id could be read from the record.
	OrderID string `json:"orderId,omitempty"`
	// Failure carries the API's answer, when there was one.
	Failure *Failure `json:"failure,omitempty"`
	// FailedAt is when the provisioner gave up on the record.
	FailedAt time.Time `json:"failedAt"`
	// ConsumerGroup is the consumer group that read the record.
	ConsumerGroup string `json:"consumerGroup,omitempty"`
	// Source is the original record.
	Source Source `json:"source"`
}

// Source is where the dead-lettered record came from, with its original bytes.
type Source struct {
	Topic     string `json:"topic"`
	Partition int    `json:"partition"`
	Offset    int64  `json:"offset"`
	// Timestamp is the record's Kafka timestamp.
	Timestamp time.Time `json:"timestamp"`
	// Key and Value are the original bytes (see NewBytes); nil Value means a tombstone.
	Key   *Bytes `json:"key"`
	Value *Bytes `json:"value"`
	// Headers are the original headers in order; nil marshals as null, which the schema accepts.
	Headers []Header `json:"headers"`
}

// Header is one original Kafka header.
type Header struct {
	Key string `json:"key"`
	// Value is nil when the header had no value.
	Value *Bytes `json:"value"`
}

// Bytes holds original bytes exactly: as text when they are valid UTF-8, else as
// standard base64. Exactly one of Text and Base64 is set; build it with NewBytes
// and read it back with Raw.
type Bytes struct {
	Text   *string `json:"text,omitempty"`
	Base64 *string `json:"base64,omitempty"`
}
