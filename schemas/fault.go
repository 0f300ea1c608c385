package schemas

import "errors"

// The words of a failure: its class, the step it happened in, and its reason.
// They are this format's, since dead letters and outcomes carry them; the
// packages that fail use them, and FaultOf is where an error gets them.

// The error classes. A dead letter's is one of the first three.
const (
	// ErrorClassPermanent: retrying the same record cannot help.
	ErrorClassPermanent = "permanent"
	// ErrorClassTransient: the error could pass, but the retries were exhausted; a replay may succeed.
	ErrorClassTransient = "transient"
	// ErrorClassInvalidInput: the record itself is malformed (an InvalidOrderError).
	ErrorClassInvalidInput = "invalid_input"
	// ErrorClassConfigFault: nobody's order's fault (a revoked token, a
	// missing entitlement): no order is failed or dead-lettered for it; the
	// consumer stops taking orders until it clears.
	ErrorClassConfigFault = "config_fault"
)

// The processing steps a failure may name; the dead-letter schema lists them.
const (
	StepDecode    = "decode"
	StepValidate  = "validate"
	StepPrecheck  = "precheck"
	StepProvision = "provision"
	StepUpdate    = "update"
	StepRemove    = "remove"
	StepLookup    = "lookup"
	StepStatus    = "status"
	StepHandle    = "handle"
	StepFollowUp  = "follow_up"
	// StepCustomer: a subscriber order waits for, or resolves, its customer.
	StepCustomer = "customer"
)

// Steps lists every step, in the order a record meets them.
var Steps = []string{StepDecode, StepValidate, StepPrecheck, StepProvision, StepUpdate, StepRemove, StepCustomer, StepLookup, StepStatus, StepHandle, StepFollowUp}

// Dead-letter reasons of records that are neither invalid JSON orders nor
// failed by Webex (those are the Reason* of decode.go and the FailureReasons).
const (
	// ReasonRecordTooLarge: the value is larger than the configured limit and was not read.
	ReasonRecordTooLarge = "record_too_large"
	// ReasonHandlerPanic: handling the record crashed; it is dead-lettered with the panic's message.
	ReasonHandlerPanic = "handler_panic"
	// ReasonDuplicateOrderID: the order id was already used, by this instance
	// recently, for an order with other content.
	ReasonDuplicateOrderID = "duplicate_order_id"
)

// Fault is how one record failed, in the words of its dead letter and its
// failed outcome.
type Fault struct {
	// Class is one of the ErrorClass* constants.
	Class string
	// Step is one of the Step* constants.
	Step string
	// Reason is the dead letter's reason.
	Reason string
	// Message explains the failure, with no secrets; personal data masked.
	Message string
	// Attempts counts the Webex calls spent (0 for a record never sent).
	Attempts int
	// OrderID is the order id read from a record that is not a valid order ("" when none).
	OrderID string
	// Failure is what the failed outcome says: the reason and Webex's answer.
	// Nil for a record that is not a carried-out order: its outcome then says
	// invalid_order with Message.
	Failure *Failure
}

// Error returns the message, so that a Fault can be returned as an error.
func (f *Fault) Error() string { return f.Message }

// Fault returns f itself.
func (f *Fault) Fault() Fault { return *f }

// A Faulter is an error that says how a record failed.
type Faulter interface {
	error
	Fault() Fault
}

var (
	_ Faulter = (*Fault)(nil)
	_ Faulter = (*InvalidOrderError)(nil)
)

// FaultOf is the one function that maps an error to its class, step and
// reason: the Fault of the first error in err's chain that has one. ok is
// false for an error that is not a record's failure (a context that ended,
// say): the record then stays unfinished.
func FaultOf(err error) (f Fault, ok bool) {
	var fe Faulter
	if !errors.As(err, &fe) {
		return Fault{}, false
	}
	return fe.Fault(), true
}

// Fault says that an invalid order is invalid input, found by validation.
func (e *InvalidOrderError) Fault() Fault {
	return Fault{Class: ErrorClassInvalidInput, Step: StepValidate, Reason: e.Reason, Message: e.Detail, OrderID: e.OrderID}
}
