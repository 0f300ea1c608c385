package schemas

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
)

// The schema versions this package reads and writes. A change that old readers
// cannot ignore gets a new version, and a new schema file beside the old one.
const (
	OrderSchemaVersion           = 1
	OutcomeSchemaVersion         = 1
	DeadLetterSchemaVersion      = 1
	CustomerOrderSchemaVersion   = 1
	CustomerOutcomeSchemaVersion = 1
)

// The $id of each embedded schema, for example for a schema header on produced records.
const (
	OrderSchemaID      = "https://schemas.acme-sp.example/wholesale/subscriber-order/v1"
	OutcomeSchemaID    = "https://schemas.acme-sp.example/wholesale/subscriber-outcome/v1"
	DeadLetterSchemaID = "https://schemas.acme-sp.example/wholesale/dead-letter/v1"

	CustomerOrderSchemaID   = "https://schemas.acme-sp.example/wholesale/customer-order/v1"
	CustomerOutcomeSchemaID = "https://schemas.acme-sp.example/wholesale/customer-outcome/v1"
)

//go:embed subscriber-order.v1.schema.json subscriber-outcome.v1.schema.json dead-letter.v1.schema.json
//go:embed customer-order.v1.schema.json customer-outcome.v1.schema.json
var schemaFiles embed.FS

// The compiled schemas. They are compiled once, when the package is initialised,
// so that a broken embedded schema stops the program at start-up rather than
// failing the first record. A compiled *jsonschema.Schema is immutable, so
// validating against it is safe for concurrent use.
var (
	orderSchema      = mustCompile("subscriber-order.v1.schema.json", OrderSchemaID)
	outcomeSchema    = mustCompile("subscriber-outcome.v1.schema.json", OutcomeSchemaID)
	deadLetterSchema = mustCompile("dead-letter.v1.schema.json", DeadLetterSchemaID)

	// Customer orders are rare (an enterprise, then its hundreds of
	// subscribers): the full validator judges them all, no quick check.
	customerOrderSchema   = mustCompile("customer-order.v1.schema.json", CustomerOrderSchemaID)
	customerOutcomeSchema = mustCompile("customer-outcome.v1.schema.json", CustomerOutcomeSchemaID)

	// orderQuick judges valid orders without the full validator (quick.go).
	// It is nil, and every order goes to the validator, when the order schema
	// uses a keyword the quick check does not implement: a test fails then.
	orderQuick, orderQuickErr = compileQuickFile("subscriber-order.v1.schema.json")
)

// mustCompile compiles one embedded schema. It panics because a schema that does
// not compile is a programming error that every test run reports.
func mustCompile(file, id string) *jsonschema.Schema {
	sch, err := compile(file, id)
	if err != nil {
		panic(fmt.Sprintf("schemas: compiling embedded %s: %v", file, err))
	}
	return sch
}

// readSchema parses one embedded schema as the validator reads JSON (numbers
// as json.Number), so that the validator and the quick check see the same.
func readSchema(file string) (any, error) {
	data, err := schemaFiles.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("reading schema: %w", err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("parsing schema: %w", err)
	}
	return doc, nil
}

func compile(file, id string) (*jsonschema.Schema, error) {
	doc, err := readSchema(file)
	if err != nil {
		return nil, err
	}
	if got, _ := doc.(map[string]any)["$id"].(string); got != id {
		return nil, fmt.Errorf("checking schema: $id is %q, want %q", got, id)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	// Formats (email, date-time, uuid) are only annotations in draft 2020-12
	// unless asserted; the formats carry real rules here, so assert them.
	c.AssertFormat()
	c.RegisterFormat(emailFormat)
	// No loader beyond the resource added here: the schemas are self-contained,
	// and a $ref that would reach for the network or the disk must fail the build.
	c.UseLoader(noLoader{})
	if err := c.AddResource(id, doc); err != nil {
		return nil, fmt.Errorf("adding schema: %w", err)
	}
	sch, err := c.Compile(id)
	if err != nil {
		return nil, fmt.Errorf("compiling schema: %w", err)
	}
	return sch, nil
}

func compileQuickFile(file string) (quickCheck, error) {
	doc, err := readSchema(file)
	if err != nil {
		return nil, err
	}
	root, ok := doc.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s is not an object", file)
	}
	return compileQuick(root)
}

// emailFormat is the validator's own email format, less its length check:
// the schemas bound an address with maxLength, and that bound, with its
// number, is the one a message should name. (The library's check says "more
// than 255 characters" of an address over 254 bytes.)
var emailFormat = &jsonschema.Format{Name: "email", Validate: func(v any) error {
	s, ok := v.(string)
	switch {
	case !ok:
		return nil
	case utf8.RuneCountInString(s) > maxEmailLength:
		return nil // maxLength reports it
	case len(s) > maxEmailLength:
		return fmt.Errorf("longer than %d bytes in UTF-8 (an address is at most %d octets)", maxEmailLength, maxEmailLength)
	}
	return builtinEmail(s)
}}

// maxEmailLength is RFC 5321's limit on an address, which the library's
// email check applies: the schemas' maxLength of every email says the same.
const maxEmailLength = 254

// builtinEmail is the library's email format, reached through a schema of its
// own: the library does not export its checkers.
var builtinEmail = func() func(string) error {
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	c.UseLoader(noLoader{})
	if err := c.AddResource("urn:builtin-email", map[string]any{"format": "email"}); err != nil {
		panic(err)
	}
	sch := c.MustCompile("urn:builtin-email")
	return func(s string) error {
		err := sch.Validate(s)
		var ve *jsonschema.ValidationError
		for errors.As(err, &ve) {
			if f, ok := ve.ErrorKind.(*kind.Format); ok && f.Err != nil {
				return f.Err
			}
			if len(ve.Causes) == 0 {
				break
			}
			err = ve.Causes[0]
		}
		return err
	}
}()

// noLoader refuses every URL, so that compiling never touches the network or the disk.
type noLoader struct{}

func (noLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("loading %s: schemas must be self-contained", url)
}

// ValidateOutcome reports whether o, as it would be marshalled, follows the
// subscriber-outcome schema. Personal data in the error is masked. It is meant
// for tests and for checks in debug builds of the producer, not for the hot path:
// it marshals and parses o. It is safe for concurrent use.
func ValidateOutcome(o Outcome) error {
	if err := validateValue(outcomeSchema, o); err != nil {
		return fmt.Errorf("validating outcome: %w", err)
	}
	return nil
}

// ValidateCustomerOutcome is ValidateOutcome for customer outcomes.
func ValidateCustomerOutcome(o CustomerOutcome) error {
	if err := validateValue(customerOutcomeSchema, o); err != nil {
		return fmt.Errorf("validating customer outcome: %w", err)
	}
	return nil
}

// ValidateDeadLetter reports whether d, as it would be marshalled, follows the
// dead-letter schema. Personal data in the error is masked. Like ValidateOutcome
// it is meant for tests and debug builds, and is safe for concurrent use.
func ValidateDeadLetter(d DeadLetter) error {
	if err := validateValue(deadLetterSchema, d); err != nil {
		return fmt.Errorf("validating dead letter: %w", err)
	}
	return nil
}

func validateValue(sch *jsonschema.Schema, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("marshalling: %w", err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("parsing marshalled JSON: %w", err)
	}
	if err := sch.Validate(doc); err != nil {
		return fmt.Errorf("%s", describeValidation(err))
	}
	return nil
}
