package provisioning

import (
	"errors"
	"fmt"
	"net/http"
	"sync"
)

// ForbiddenFault is a 403 that several different customers met in a row on
// one step: the partner's wxc-wholesale entitlement (or the partner-testing
// setting) or the token's spark-admin:wholesale_subscribers_write scope is
// missing. It is nobody's order's fault, so Classify calls it a
// configuration fault, like a revoked token.
type ForbiddenFault struct {
	Step string
	// Customers is how many different customers met the 403 in a row.
	Customers int
	// Err is the last 403.
	Err error
}

func (e *ForbiddenFault) Error() string {
	return fmt.Sprintf("Webex refuses %s for %d different customers in a row (403): check the partner's wxc-wholesale entitlement and the token's spark-admin:wholesale_subscribers_write scope: %v",
		e.Step, e.Customers, e.Err)
}

func (e *ForbiddenFault) Unwrap() error { return e.Err }

// forbiddenStreaks counts, per step, the different customers whose call met
// a 403 since that step's last success. One customer's 403 among successes
// is that order's failure; the same answer for customer after customer is
// the partner's configuration.
type forbiddenStreaks struct {
	threshold int

	mu        sync.Mutex
	customers map[string]map[string]struct{}
}

func newForbiddenStreaks(threshold int) *forbiddenStreaks {
	return &forbiddenStreaks{threshold: threshold, customers: map[string]map[string]struct{}{}}
}

// check is told the result of one call of step for customer and returns it,
// or a *ForbiddenFault in place of a 403 once the streak is long enough.
func (f *forbiddenStreaks) check(step string, customer string, err error) error {
	var api *APIError
	forbidden := errors.As(err, &api) && api.StatusCode == http.StatusForbidden
	if err != nil && !forbidden {
		return err // neither a success nor a 403: the streak stands
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	seen := f.customers[step]
	if !forbidden {
		if len(seen) > 0 {
			delete(f.customers, step)
		}
		return nil
	}
	if seen == nil {
		seen = map[string]struct{}{}
		f.customers[step] = seen
	}
	// Bounded: past the threshold one more customer changes nothing.
	if len(seen) < f.threshold {
		seen[customer] = struct{}{}
	}
	if len(seen) >= f.threshold {
		return &ForbiddenFault{Step: step, Customers: len(seen), Err: err}
	}
	return err
}
