package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"
)

// ensureFollowUpsTopic creates the compacted follow-up topic with the orders
// topic's partition count when it is missing, and refuses one with fewer
// partitions than the orders topic: an order's follow-up record goes to the
// order's own partition, so that the member that owns the order owns it.
func (a *App) ensureFollowUpsTopic(ctx context.Context) error {
	topic, orders := a.cfg.followUpsTopic(), a.cfg.OrdersTopic
	c := &kafka.Client{Addr: kafka.TCP(a.cfg.Brokers...), Timeout: 10 * time.Second, Transport: a.kafka.transport}
	for {
		err := ensureTopic(ctx, c, topic, orders)
		var fatal *topicError
		switch {
		case err == nil:
			return nil
		case errors.As(err, &fatal):
			return err
		case ctx.Err() != nil:
			return nil
		}
		// The broker may not answer yet: the consumer would wait for it too.
		a.log.Warn().Err(err).Str("topic", topic).Msg("checking the follow-up topic; trying again")
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}

// topicError is a problem with the topics that waiting cannot fix.
type topicError struct{ msg string }

func (e *topicError) Error() string { return e.msg }

func ensureTopic(ctx context.Context, c *kafka.Client, topic, orders string) error {
	md, err := c.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{orders, topic}})
	if err != nil {
		return err
	}
	parts := map[string]int{}
	for _, t := range md.Topics {
		if t.Error == nil {
			parts[t.Name] = len(t.Partitions)
		}
	}
	want, ok := parts[orders]
	if !ok {
		return fmt.Errorf("the orders topic %s is not there yet", orders)
	}
	if have, ok := parts[topic]; ok {
		if have < want {
			return &topicError{fmt.Sprintf("the follow-up topic %s has %d partitions, fewer than the %d of the orders topic %s: give it at least as many (kafka-topics --alter --partitions %d)", topic, have, want, orders, want)}
		}
		return nil
	}
	res, err := c.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{
		Topic: topic, NumPartitions: want, ReplicationFactor: -1,
		ConfigEntries: []kafka.ConfigEntry{{ConfigName: "cleanup.policy", ConfigValue: "compact"}},
	}}})
	if err != nil {
		return err
	}
	if err := res.Errors[topic]; err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
		return &topicError{fmt.Sprintf("creating the follow-up topic %s (compacted, %d partitions): %v; create it yourself or grant the service CreateTopics", topic, want, err)}
	}
	return nil
}

// runCustomers consumes the customer orders until ctx ends. Until the
// customer orders topic exists it waits for it, saying so once: an
// operator who has not created it yet still gets every subscriber order
// served.
func (a *App) runCustomers(ctx context.Context) error {
	topic := a.cfg.CustomerOrdersTopic
	if !a.awaitTopic(ctx, topic, "the customer orders topic does not exist: customer orders are read once it does (create it, or set --customer-orders-topic \"\" to read none)") {
		return nil
	}
	a.log.Info().Str("topic", topic).Str("group_id", a.cfg.CustomerGroupID()).Str("outcomes_topic", a.cfg.CustomerOutcomesTopic).
		Msg("consuming customer orders")
	return a.customers.Run(ctx)
}

// awaitTopic waits until topic exists, logging warning once if it does
// not; false when ctx ended first.
func (a *App) awaitTopic(ctx context.Context, topic, warning string) bool {
	c := &kafka.Client{Addr: kafka.TCP(a.cfg.Brokers...), Timeout: 10 * time.Second, Transport: a.kafka.transport}
	for warned := false; ; {
		md, err := c.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
		if err == nil && len(md.Topics) == 1 && md.Topics[0].Error == nil && len(md.Topics[0].Partitions) > 0 {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		if !warned && err == nil {
			a.log.Warn().Str("topic", topic).Msg(warning)
			warned = true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(5 * time.Second):
		}
	}
}
