package schemas

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/acme-sp/wholesale-provisioner/internal/redact"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
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
	// ReasonSchemaViolation: the value is JSON but does not follow the subscriber-order schema.
	ReasonSchemaViolation = "schema_violation"
)

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

// DecodeOrder decodes and validates one record value as a subscriber order.
// It checks, in order: that there is a value (nil is a tombstone), that it is
// not empty, that it is UTF-8, that it is one JSON value, that schemaVersion is
// supported, and that the document follows the subscriber-order schema; every
// failure is an *InvalidOrderError. Limiting the size of the value is the
// caller's job. DecodeOrder is safe for concurrent use.
func DecodeOrder(value []byte) (Order, error) {
	switch {
	case value == nil:
		return Order{}, &InvalidOrderError{Reason: ReasonTombstone, Detail: "the record has no value"}
	case len(value) == 0:
		return Order{}, &InvalidOrderError{Reason: ReasonEmptyValue, Detail: "the record value is empty"}
	case !utf8.Valid(value):
		return Order{}, &InvalidOrderError{Reason: ReasonInvalidEncoding, Detail: invalidUTF8Detail(value)}
	}

	// Parse once into a generic document: it serves the order id, the version
	// check and the schema validation. Numbers stay json.Number, which is what
	// the validator expects and keeps large integers exact.
	doc, trailing, err := parseJSON(value)
	orderID := readOrderID(doc)
	if err != nil {
		return Order{}, &InvalidOrderError{Reason: ReasonInvalidJSON, Detail: err.Error(), OrderID: orderID}
	}
	if trailing {
		return Order{}, &InvalidOrderError{Reason: ReasonInvalidJSON, Detail: "unexpected data after the top-level JSON value", OrderID: orderID}
	}

	// Check the version before the schema, so that an order from a newer
	// producer is reported as such and not as a list of schema violations.
	if detail, ok := checkSchemaVersion(doc); !ok {
		return Order{}, &InvalidOrderError{Reason: ReasonUnsupportedSchemaVersion, Detail: detail, OrderID: orderID}
	}
	if err := orderSchema.Validate(doc); err != nil {
		// Validation messages quote values (an order id, a package, a property
		// name) that may hold an address: mask them all, not only the email fields.
		return Order{}, &InvalidOrderError{Reason: ReasonSchemaViolation, Detail: redact.Text(describeValidation(err)), OrderID: orderID}
	}

	// The schema already rejects unknown fields; DisallowUnknownFields is a
	// second line of defence should the schema and the Go type drift apart.
	var o Order
	dec := json.NewDecoder(bytes.NewReader(value))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&o); err != nil {
		// Only a schema that accepts what the Go type cannot hold gets here,
		// for example a leap second in occurredAt.
		return Order{}, &InvalidOrderError{Reason: ReasonSchemaViolation, Detail: redact.Text(describeDecodeError(err)), OrderID: orderID}
	}
	return o, nil
}

// parseJSON parses exactly one JSON value. trailing reports bytes other than
// white space after it; doc is still returned then, so that the order id can
// be read.
func parseJSON(value []byte) (doc any, trailing bool, err error) {
	dec := json.NewDecoder(bytes.NewReader(value))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		return nil, false, describeSyntaxError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return doc, true, nil
	}
	return doc, false, nil
}

func describeSyntaxError(err error) error {
	var syn *json.SyntaxError
	switch {
	case errors.As(err, &syn):
		return fmt.Errorf("at byte %d: %s", syn.Offset, syn.Error())
	case errors.Is(err, io.EOF):
		return errors.New("no JSON value (only white space)")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("unexpected end of JSON input")
	default:
		return err
	}
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

func describeDecodeError(err error) string {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) && typeErr.Field != "" {
		return fmt.Sprintf("/%s: cannot hold a JSON %s in %s", strings.ReplaceAll(typeErr.Field, ".", "/"), typeErr.Value, typeErr.Type)
	}
	return fmt.Sprintf("decoding order: %v", err)
}
