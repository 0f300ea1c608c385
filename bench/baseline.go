package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/acme-sp/wholesale-provisioner/internal/app"
)

// baseline is what a team writes without this project: for each partition, a
// kafka-go Reader in the consumer group looping FetchMessage, the handling of
// the order, CommitMessages, one order at a time. It handles the orders with
// the engine's own Handling (workflow, outcome writer, pipeline), so the two
// differ only in how records are consumed.
type baseline struct {
	env      trialEnv
	handling *app.Handling
}

// newBaseline builds the engine's Handling, without the consumer.
func newBaseline(ctx context.Context, env trialEnv) (*baseline, error) {
	cfg := env.cfg
	// Each loop waits for its write, so the shortest linger serves it best.
	cfg.Writer.BatchTimeout = time.Millisecond
	h, err := app.NewHandling(ctx, cfg, env.log)
	if err != nil {
		return nil, fmt.Errorf("building the baseline's handling: %w", err)
	}
	return &baseline{env: env, handling: h}, nil
}

// startBaseline starts the baseline in this process.
func startBaseline(ctx context.Context, env trialEnv) (running, error) {
	b, err := newBaseline(ctx, env)
	if err != nil {
		return nil, err
	}
	return startInProcess(ctx, "baseline", b.run, b.handling.Close)
}

// run runs one consumer loop per partition until ctx ends.
func (b *baseline) run(ctx context.Context) error {
	errs := make([]error, b.env.partitions)
	var wg sync.WaitGroup
	for i := range b.env.partitions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = b.loop(ctx)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// loop is one member of the group: fetch, handle, commit, one record at a time.
func (b *baseline) loop(ctx context.Context) error {
	cfg := b.env.cfg
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:     cfg.Brokers,
		GroupID:     cfg.GroupID,
		Topic:       cfg.OrdersTopic,
		StartOffset: kafka.FirstOffset,
		MaxWait:     500 * time.Millisecond,
	})
	defer r.Close()
	for {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("fetching order: %w", err)
		}
		if err := b.handling.Pipeline.Handle(ctx, m, nil); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("handling order at offset %d: %w", m.Offset, err)
		}
		if err := r.CommitMessages(ctx, m); err != nil && ctx.Err() == nil {
			// A rebalance took the partition: its new owner redelivers the order.
			b.env.log.Warn().Err(err).Msg("committing offset failed")
		}
	}
}
