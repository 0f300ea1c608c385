package dlq

import (
	"fmt"
	"slices"
	"strings"

	"github.com/acme-sp/wholesale-provisioner/schemas"
)

// Filter selects dead letters. Each non-empty list must contain the dead
// letter's value for it to match; the zero Filter matches every dead letter.
type Filter struct {
	// Reasons are dead-letter reasons, such as retries_exhausted.
	Reasons []string
	// ErrorClasses are error classes: permanent, transient or invalid_input.
	ErrorClasses []string
	// OrderIDs are order ids.
	OrderIDs []string
}

// errorClasses are the error classes a dead letter may have.
var errorClasses = []string{schemas.ErrorClassPermanent, schemas.ErrorClassTransient, schemas.ErrorClassInvalidInput}

// Validate reports an error class that no dead letter can have.
func (f Filter) Validate() error {
	for _, c := range f.ErrorClasses {
		if !slices.Contains(errorClasses, c) {
			return fmt.Errorf("error class %q is not one of %s", c, strings.Join(errorClasses, ", "))
		}
	}
	return nil
}

// Match reports whether d passes the filter.
func (f Filter) Match(d schemas.DeadLetter) bool {
	return in(f.Reasons, d.Reason) && in(f.ErrorClasses, d.ErrorClass) && in(f.OrderIDs, d.OrderID)
}

// String describes the filter for reports: "all dead letters", or the lists.
func (f Filter) String() string {
	var parts []string
	for _, l := range []struct {
		name string
		vals []string
	}{{"reason", f.Reasons}, {"error class", f.ErrorClasses}, {"order id", f.OrderIDs}} {
		if len(l.vals) > 0 {
			parts = append(parts, l.name+" "+strings.Join(l.vals, "|"))
		}
	}
	if len(parts) == 0 {
		return "all dead letters"
	}
	return strings.Join(parts, ", ")
}

func in(list []string, v string) bool { return len(list) == 0 || slices.Contains(list, v) }
