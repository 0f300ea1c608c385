package schemas

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"unicode/utf8"

	"github.com/acme-sp/wholesale-provisioner/internal/redact"
	"github.com/acme-sp/wholesale-provisioner/internal/strictjson"
)

// The reasons of an InvalidOrderError: stable, low-cardinality codes, fit for
// metric labels and for the reason of a dead-letter record.
const (
	// ReasonTombstone: the record has no value (a nil value, Kafka's delete marker).
	ReasonTombstone = "tombstone"
	// ReasonEmptyValue: the record's value is present but has no bytes.
	ReasonEmptyValue = "empty_value"
	// ReasonInvalidEncoding: the value is not valid UTF-8.
	ReasonInvalidEncoding = "invalid_encoding"
	// ReasonInvalidJSON: the value is not one JSON value, or has bytes after it.
	ReasonInvalidJSON = "invalid_json"
	// ReasonUnsupportedSchemaVersion: schemaVersion is a number other than OrderSchemaVersion.
	ReasonUnsupportedSchemaVersion = "unsupported_schema_version"
	// ReasonSchemaViolation: the value is JSON but does not follow the
	// subscriber-order schema, or names a key twice.
	ReasonSchemaViolation = "schema_violation"
	// ReasonLimitExceeded: the value nests arrays or objects deeper than
	// MaxOrderDepth, holds more than MaxOrderValues values, or a number too
	// long to be a value of the schema: refused before the work on it can
	// grow with its shape rather than its size.
	ReasonLimitExceeded = "limit_exceeded"
)

// OrderLimits bound what an order's JSON may hold before any of it is
// interpreted. An order nests three levels deep, holds about 25 values and
// one small integer (schemaVersion), so these leave room without letting a
// record's shape, rather than its size, decide how long it takes.
var OrderLimits = strictjson.Limits{MaxDepth: MaxOrderDepth, MaxNumberLen: 32, MaxValues: MaxOrderValues}

// MaxOrderDepth is the deepest nesting of arrays and objects accepted in an
// order (the standard library stops at 10,000; an order needs 3).
const MaxOrderDepth = 16

// MaxOrderValues is the most values (strings, numbers, objects, arrays at
// any depth) accepted in an order: ten times what one holds.
const MaxOrderValues = 256

// InvalidOrderError says why a record value is not a valid subscriber order.
// Retrying cannot fix it: the record should be dead-lettered (and, when OrderID
// is set, answered with a failed outcome).
type InvalidOrderError struct {
	// Reason is one of the Reason* codes above, such as ReasonSchemaViolation.
	Reason string
	// Detail says precisely what is wrong, naming the JSON pointer of each
	// problem, for example `/email: "a***@example.com" is not a valid email`.
	// Email addresses and phone numbers in it are masked, so it may be logged.
	Detail string
	// OrderID is the orderId of the document whenever it could be read as a
	// string, even when the document is otherwise invalid; "" when it could not.
	// For a schema violation it may not itself follow the orderId rules, so
	// treat it as untrusted text.
	OrderID string
}

// Error returns the reason and the detail, with the order id when it is known.
func (e *InvalidOrderError) Error() string {
	if e.OrderID != "" {
		return fmt.Sprintf("invalid order %s: %s: %s", quoteShort(e.OrderID), e.Reason, e.Detail)
	}
	return fmt.Sprintf("invalid order: %s: %s", e.Reason, e.Detail)
}

// DecodeOrder decodes and validates one record value as a subscriber order:
// the checks of decodeDocument, with the subscriber-order schema; every
// failure is an *InvalidOrderError. Its time
// is linear in the size of the value, whatever its shape; limiting the size
// is the caller's job. DecodeOrder is safe for concurrent use.
func DecodeOrder(value []byte) (Order, error) {
	doc, orderID, ie := decodeDocument(value, validateOrder)
	if ie != nil {
		return Order{}, ie
	}
	// Fill the Go type from the document already parsed: decoding the bytes a
	// second time cost as much as the parse itself.
	o, err := orderFromDocument(doc)
	if err != nil {
		// Only a schema that accepts what the Go type cannot hold gets here,
		// for example a leap second in occurredAt.
		return Order{}, &InvalidOrderError{Reason: ReasonSchemaViolation, Detail: redact.Text(err.Error()), OrderID: orderID}
	}
	return o, nil
}

// DecodeCustomerOrder decodes and validates one record value as a customer
// order, with the checks of DecodeOrder and the customer-order schema. It is
// safe for concurrent use.
func DecodeCustomerOrder(value []byte) (CustomerOrder, error) {
	_, orderID, ie := decodeDocument(value, customerOrderSchema.Validate)
	if ie != nil {
		return CustomerOrder{}, ie
	}
	// A second decode of bytes already bounded and checked: customer orders
	// are too few for a hand-written filler to pay.
	var o CustomerOrder
	if err := json.Unmarshal(value, &o); err != nil {
		return CustomerOrder{}, &InvalidOrderError{Reason: ReasonSchemaViolation, Detail: redact.Text(err.Error()), OrderID: orderID}
	}
	return o, nil
}

// decodeDocument makes the checks every kind of order shares and returns
// the parsed document and its order id. It checks, in order: that there is
// a value (nil is a tombstone), that it is not empty, that it is UTF-8, that
// it is one JSON value within OrderLimits with no key twice in an object and
// no lone surrogate escape, that schemaVersion is supported, and that
// validate accepts the document; every failure is an *InvalidOrderError.
func decodeDocument(value []byte, validate func(any) error) (map[string]any, string, *InvalidOrderError) {
	switch {
	case value == nil:
		return nil, "", &InvalidOrderError{Reason: ReasonTombstone, Detail: "the record has no value"}
	case len(value) == 0:
		return nil, "", &InvalidOrderError{Reason: ReasonEmptyValue, Detail: "the record value is empty"}
	case !utf8.Valid(value):
		return nil, "", &InvalidOrderError{Reason: ReasonInvalidEncoding, Detail: invalidUTF8Detail(value)}
	}

	// Parse once into a generic document: it serves the order id, the version
	// check and the schema validation. Numbers stay json.Number, which is what
	// the validator expects and keeps large integers exact. The parse is
	// strict and bounded: its work is linear in the size of the value.
	doc, err := strictjson.Parse(value, OrderLimits)
	if err != nil {
		ie := parseError(value, doc, err)
		// The pointer names the record's own keys, which may hold an address.
		ie.Detail = redact.Text(ie.Detail)
		return nil, "", ie
	}
	orderID := readOrderID(doc)

	// Check the version before the schema, so that an order from a newer
	// producer is reported as such and not as a list of schema violations.
	if detail, ok := checkSchemaVersion(doc); !ok {
		return nil, orderID, &InvalidOrderError{Reason: ReasonUnsupportedSchemaVersion, Detail: detail, OrderID: orderID}
	}
	if err := validate(doc); err != nil {
		// Validation messages quote values (an order id, a package, a property
		// name) that may hold an address: mask them all, not only the email fields.
		return nil, orderID, &InvalidOrderError{Reason: ReasonSchemaViolation, Detail: redact.Text(describeValidation(err)), OrderID: orderID}
	}
	obj, _ := doc.(map[string]any) // the schemas require an object
	return obj, orderID, nil
}

// validateOrder checks doc against the order schema: the quick check accepts
// what it is sure of, the full validator judges the rest and explains.
func validateOrder(doc any) error {
	if orderQuick != nil && orderQuick(doc) == valid {
		return nil
	}
	return orderSchema.Validate(doc)
}

// orderFromDocument fills an Order from a document that follows the schema.
// A property the Go type does not know is an error, as a second line of
// defence should the schema and the type drift apart; the fuzz test checks
// that the result equals what encoding/json decodes from the same bytes.
func orderFromDocument(doc map[string]any) (Order, error) {
	var o Order
	err := eachProperty(doc, func(name string, v any) (err error) {
		switch name {
		case "schemaVersion":
			o.SchemaVersion, err = documentInt(v)
		case "orderId":
			o.OrderID, err = documentString(v)
		case "action":
			var a string
			a, err = documentString(v)
			o.Action = Action(a)
		case "occurredAt":
			var t string
			if t, err = documentString(v); err == nil {
				// As encoding/json decodes a time.Time: strict RFC 3339.
				err = o.OccurredAt.UnmarshalText([]byte(t))
			}
		case "customerId":
			o.CustomerID, err = documentString(v)
		case "customerExternalId":
			o.CustomerExternalID, err = documentString(v)
		case "email":
			o.Email, err = documentString(v)
		case "packages":
			o.Packages, err = documentStrings(v)
		case "provisioningParameters":
			o.ProvisioningParameters = &ProvisioningParameters{}
			err = eachProperty(v, o.ProvisioningParameters.set)
		case "customerInfo":
			o.CustomerInfo = &CustomerInfo{}
			err = eachProperty(v, o.CustomerInfo.set)
		case "provisioningId":
			o.ProvisioningID, err = documentString(v)
		default:
			err = errUnknownProperty
		}
		return err
	})
	if err != nil {
		return Order{}, fmt.Errorf("/%w", err)
	}
	return o, nil
}

func (pp *ProvisioningParameters) set(name string, v any) (err error) {
	switch name {
	case "firstName":
		pp.FirstName, err = documentString(v)
	case "lastName":
		pp.LastName, err = documentString(v)
	case "primaryPhoneNumber":
		pp.PrimaryPhoneNumber, err = documentString(v)
	case "extension":
		pp.Extension, err = documentString(v)
	case "locationId":
		pp.LocationID, err = documentString(v)
	default:
		err = errUnknownProperty
	}
	return err
}

func (ci *CustomerInfo) set(name string, v any) (err error) {
	switch name {
	case "primaryEmail":
		ci.PrimaryEmail, err = documentString(v)
	default:
		err = errUnknownProperty
	}
	return err
}

var errUnknownProperty = errors.New("unknown field")

// eachProperty calls set with every property of the object v; its error names
// the property.
func eachProperty(v any, set func(name string, v any) error) error {
	obj, ok := v.(map[string]any)
	if !ok {
		return errors.New("not an object")
	}
	for name, pv := range obj {
		if err := set(name, pv); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}

func documentString(v any) (string, error) {
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("cannot hold a JSON %T in a string", v)
	}
	return s, nil
}

func documentStrings(v any) ([]string, error) {
	arr, ok := v.([]any)
	if !ok {
		return nil, errors.New("not an array")
	}
	out := make([]string, len(arr))
	for i, e := range arr {
		s, err := documentString(e)
		if err != nil {
			return nil, fmt.Errorf("%d: %w", i, err)
		}
		out[i] = s
	}
	return out, nil
}

func documentInt(v any) (int, error) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, fmt.Errorf("cannot hold a JSON %T in an int", v)
	}
	i, err := strconv.ParseInt(n.String(), 10, 0)
	if err != nil {
		return 0, fmt.Errorf("cannot hold %s in an int", truncate(n.String()))
	}
	return int(i), nil
}

// parseError explains why value is not an order's JSON. doc is what the
// parse read before trailing data, if any, so that the order id can be told;
// for the other refusals the order id stays unread: a record whose keys
// repeat has no one order id, and the others were refused before theirs.
func parseError(value []byte, doc any, err error) *InvalidOrderError {
	var se *strictjson.Error
	if !errors.As(err, &se) {
		return &InvalidOrderError{Reason: ReasonInvalidJSON, Detail: err.Error()}
	}
	at := se.Pointer
	if at == "" {
		at = "/"
	}
	switch se.Kind {
	case strictjson.KindTrailing:
		return &InvalidOrderError{Reason: ReasonInvalidJSON, Detail: "unexpected data after the top-level JSON value", OrderID: readOrderID(doc)}
	case strictjson.KindDepth:
		return &InvalidOrderError{Reason: ReasonLimitExceeded,
			Detail: fmt.Sprintf("%s: arrays and objects nested deeper than %d levels (at byte %d); an order nests 3", truncate(at), MaxOrderDepth, se.Offset)}
	case strictjson.KindValues:
		return &InvalidOrderError{Reason: ReasonLimitExceeded,
			Detail: fmt.Sprintf("%s: more than %d values in the document (at byte %d); an order holds about 25", truncate(at), MaxOrderValues, se.Offset)}
	case strictjson.KindNumber:
		return &InvalidOrderError{Reason: ReasonLimitExceeded,
			Detail: fmt.Sprintf("%s: %s (at byte %d); no order field holds such a number", truncate(at), se.Msg, se.Offset)}
	case strictjson.KindDuplicateKey:
		// Readers that keep the first and readers that keep the last would
		// act on different orders: refuse rather than pick one.
		return &InvalidOrderError{Reason: ReasonSchemaViolation,
			Detail: fmt.Sprintf("%s: the key %s appears twice in one object (at byte %d); each may appear once", truncate(at), quoteShort(se.Key), se.Offset)}
	case strictjson.KindSurrogate:
		return &InvalidOrderError{Reason: ReasonInvalidEncoding,
			Detail: fmt.Sprintf("%s: %s (at byte %d): Unicode text cannot hold it", truncate(at), se.Msg, se.Offset)}
	case strictjson.KindInvalidUTF8:
		return &InvalidOrderError{Reason: ReasonInvalidEncoding, Detail: invalidUTF8Detail(value)}
	}
	return &InvalidOrderError{Reason: ReasonInvalidJSON, Detail: syntaxDetail(value, se)}
}

// syntaxDetail says where and what the syntax error is, in the words of the
// standard library, whose messages operators know; the strict parser's own
// when the two disagree (which the fuzz test keeps from happening).
func syntaxDetail(value []byte, se *strictjson.Error) string {
	var doc any
	dec := json.NewDecoder(bytes.NewReader(value))
	dec.UseNumber()
	err := dec.Decode(&doc)
	var syn *json.SyntaxError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("at byte %d: %s", syn.Offset, syn.Error())
	case errors.Is(err, io.EOF):
		return "no JSON value (only white space)"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "unexpected end of JSON input"
	}
	return fmt.Sprintf("at byte %d: %s", se.Offset, se.Msg)
}

func invalidUTF8Detail(value []byte) string {
	for i := 0; i < len(value); {
		r, size := utf8.DecodeRune(value[i:])
		if r == utf8.RuneError && size == 1 {
			return fmt.Sprintf("the value is not valid UTF-8 (first invalid byte 0x%02x at offset %d)", value[i], i)
		}
		i += size
	}
	return "the value is not valid UTF-8"
}

// readOrderID returns the orderId of doc when it is a string.
func readOrderID(doc any) string {
	obj, _ := doc.(map[string]any)
	id, _ := obj["orderId"].(string)
	return id
}

// checkSchemaVersion reports whether schemaVersion is supported. A missing or
// non-numeric schemaVersion is left to the schema, which names it precisely;
// any number other than the integer 1 is unsupported (1.0 too, since the Go
// type could not hold it as written).
func checkSchemaVersion(doc any) (detail string, ok bool) {
	obj, _ := doc.(map[string]any)
	n, isNumber := obj["schemaVersion"].(json.Number)
	if !isNumber {
		return "", true
	}
	if v, err := strconv.ParseInt(n.String(), 10, 64); err == nil && v == OrderSchemaVersion {
		return "", true
	}
	return fmt.Sprintf("/schemaVersion: version %s is not supported; this consumer reads version %d", truncate(n.String()), OrderSchemaVersion), false
}
