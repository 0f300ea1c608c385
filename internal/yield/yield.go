// Package yield lets a task give back its worker slot while it waits (a retry
// backoff, say) and take one again before it resumes, so that a waiting task
// does not hold a worker the others need.
package yield

import "context"

// Slot is a worker slot held by the task running with a context.
type Slot interface {
	// Release gives the slot back; it does nothing if the slot is not held.
	Release()
	// Acquire takes a slot again, waiting for one; it does nothing if held.
	Acquire(ctx context.Context) error
}

type key struct{}

// With returns a context that carries the task's slot.
func With(ctx context.Context, s Slot) context.Context { return context.WithValue(ctx, key{}, s) }

// Release gives back the slot carried by ctx, if any.
func Release(ctx context.Context) {
	if s, ok := ctx.Value(key{}).(Slot); ok {
		s.Release()
	}
}

// Acquire takes a slot again for the task of ctx, if it runs with one.
func Acquire(ctx context.Context) error {
	if s, ok := ctx.Value(key{}).(Slot); ok {
		return s.Acquire(ctx)
	}
	return nil
}
