// Package consumer reads records from a Kafka consumer group and hands each one to
// a Handler, committing its offset only after the handler has finished with it.
package consumer

import (
	"context"
	"errors"

	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"
)

// Handler processes one record. A nil error means the record is finished (its
// outcome or dead letter is durably written) and its offset may be committed. An
// error means it is not: the consumer retries the same record after a backoff and
// never skips it. Handle must be safe to call again for the same record.
type Handler interface {
	Handle(ctx context.Context, msg kafka.Message) error
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, msg kafka.Message) error

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, msg kafka.Message) error { return f(ctx, msg) }

// Config configures a Consumer. The zero value of each optional field selects the
// default given in its comment.
type Config struct {
	// Brokers are the bootstrap addresses. Required.
	Brokers []string
	// GroupID is the consumer group. Required.
	GroupID string
	// Topic is the orders topic. Required.
	Topic string
	// Dialer connects to the brokers (TLS, SASL). Default kafka.DefaultDialer.
	Dialer *kafka.Dialer
	// SessionTimeout is the group session timeout. Default 30s.
	SessionTimeout time.Duration
	// HeartbeatInterval is how often the group is told we live. Default 3s.
	HeartbeatInterval time.Duration
	// RebalanceTimeout bounds a rebalance. Default 30s.
	RebalanceTimeout time.Duration
	// MaxWait bounds a fetch that waits for new records. Default 500ms.
	MaxWait time.Duration
	// RetryInitialInterval is the first wait before handling a record again after
	// the handler failed. Default 500ms.
	RetryInitialInterval time.Duration
	// RetryMaxInterval caps that wait. Default 30s.
	RetryMaxInterval time.Duration
	// Logger receives the consumer's logs. Default: a disabled logger.
	Logger *zerolog.Logger
}

func (c *Config) setDefaults() {
	if c.SessionTimeout <= 0 {
		c.SessionTimeout = 30 * time.Second
	}
	if c.HeartbeatInterval <= 0 {
		c.HeartbeatInterval = 3 * time.Second
	}
	if c.RebalanceTimeout <= 0 {
		c.RebalanceTimeout = 30 * time.Second
	}
	if c.MaxWait <= 0 {
		c.MaxWait = 500 * time.Millisecond
	}
	if c.RetryInitialInterval <= 0 {
		c.RetryInitialInterval = 500 * time.Millisecond
	}
	if c.RetryMaxInterval <= 0 {
		c.RetryMaxInterval = 30 * time.Second
	}
	if c.Logger == nil {
		l := zerolog.Nop()
		c.Logger = &l
	}
}

// Validate reports the first missing or wrong setting.
func (c *Config) Validate() error {
	switch {
	case len(c.Brokers) == 0:
		return errors.New("no Kafka brokers configured")
	case c.GroupID == "":
		return errors.New("no consumer group id configured")
	case c.Topic == "":
		return errors.New("no orders topic configured")
	}
	return nil
}

// Consumer reads the orders topic as a member of a consumer group and processes
// one record at a time, in offset order.
type Consumer struct {
	cfg     Config
	handler Handler
	log     zerolog.Logger
}

// New returns a Consumer that hands records to h.
func New(cfg Config, h Handler) (*Consumer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	return &Consumer{cfg: cfg, handler: h, log: *cfg.Logger}, nil
}

func (c *Consumer) newReader() *kafka.Reader {
	return kafka.NewReader(kafka.ReaderConfig{
		Brokers:           c.cfg.Brokers,
		GroupID:           c.cfg.GroupID,
		Topic:             c.cfg.Topic,
		Dialer:            c.cfg.Dialer,
		SessionTimeout:    c.cfg.SessionTimeout,
		HeartbeatInterval: c.cfg.HeartbeatInterval,
		RebalanceTimeout:  c.cfg.RebalanceTimeout,
		MaxWait:           c.cfg.MaxWait,
		StartOffset:       kafka.FirstOffset,
		// Commits are synchronous (CommitInterval 0), made only after the handler finished.
		CommitInterval: 0,
		ErrorLogger: kafka.LoggerFunc(func(msg string, args ...any) {
			c.log.Warn().Str("component", "kafka-reader").Msgf(msg, args...)
		}),
	})
}

// Run consumes until ctx ends, then leaves the group and returns nil. An
// offset is committed only after the handler returned nil for its record.
func (c *Consumer) Run(ctx context.Context) error {
	r := c.newReader()
	defer func() {
		if err := r.Close(); err != nil {
			c.log.Warn().Err(err).Msg("closing kafka reader")
		}
	}()
	for {
		msg, err := r.FetchMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			// The reader reconnects by itself; wait a little rather than spin.
			c.log.Error().Err(err).Msg("fetching order")
			if sleep(ctx, time.Second) != nil {
				return nil
			}
			continue
		}
		if err := c.handle(ctx, msg); err != nil {
			return nil // ctx ended before the record was finished: it stays uncommitted
		}
		if err := r.CommitMessages(ctx, msg); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			// Typically a rebalance took the partition away: the new owner
			// redelivers the record, and handling is idempotent.
			c.log.Warn().Err(err).Str("topic", msg.Topic).Int("partition", msg.Partition).
				Int64("offset", msg.Offset).Msg("committing offset failed; the record will be redelivered")
		}
	}
}

// handle runs the handler until it succeeds or ctx ends.
func (c *Consumer) handle(ctx context.Context, msg kafka.Message) error {
	b := backoff.WithContext(backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(c.cfg.RetryInitialInterval),
		backoff.WithMaxInterval(c.cfg.RetryMaxInterval),
		backoff.WithMaxElapsedTime(0), // never give up on a record: skipping it would lose it
	), ctx)
	return backoff.RetryNotify(func() error {
		return c.handler.Handle(ctx, msg)
	}, b, func(err error, wait time.Duration) {
		c.log.Error().Err(err).Str("topic", msg.Topic).Int("partition", msg.Partition).
			Int64("offset", msg.Offset).Dur("retry_in", wait).Msg("order not finished; it will be handled again")
	})
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
