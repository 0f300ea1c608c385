package app

import (
	"context"
	"errors"
	"time"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"

	"github.com/acme-sp/wholesale-provisioner/internal/kafkasec"
)

// kafkaClients carry the TLS and SASL settings to every Kafka client of the
// App: the dialer to the consumer group and its partition readers, the
// transport to the writers and the kafka.Client of lag and health.
type kafkaClients struct {
	dialer    *kafka.Dialer
	transport *kafka.Transport
}

// kafkaStartCheckTimeout bounds the start-up check of the Kafka credentials.
const kafkaStartCheckTimeout = 15 * time.Second

// newKafkaClients builds the Kafka clients' security from sec, says at warn
// level what it allows but should not (certificate checks off, PLAIN in clear),
// and, when TLS or SASL is on, opens one connection to the brokers: a refused
// password or certificate stops the start with a message saying what to fix
// (kafka-go's consumer group would otherwise retry it every few seconds,
// forever). Brokers that are merely unreachable do not: the clients keep
// trying, as without security.
func newKafkaClients(ctx context.Context, sec kafkasec.Config, brokers []string, log zerolog.Logger) (kafkaClients, error) {
	for _, w := range sec.Warnings() {
		log.Warn().Str("component", "kafka-security").Msg(w)
	}
	d, err := sec.Dialer()
	if err != nil {
		return kafkaClients{}, err
	}
	tr, err := sec.Transport()
	if err != nil {
		return kafkaClients{}, err
	}
	if sec.Enabled() {
		ctx, cancel := context.WithTimeout(ctx, kafkaStartCheckTimeout)
		defer cancel()
		switch err := sec.Check(ctx, brokers); {
		case kafkasec.Permanent(err):
			return kafkaClients{}, err
		case err != nil:
			log.Warn().Err(err).Str("kafka_security", sec.Describe()).
				Msg("Kafka brokers not reachable yet; starting anyway, the clients keep trying")
		default:
			log.Info().Str("kafka_security", sec.Describe()).Msg("Kafka connection checked")
		}
	}
	return kafkaClients{dialer: d, transport: tr}, nil
}

// kafkaProblems lists the problems of sec one by one, for Config.Validate.
func kafkaProblems(sec *kafkasec.Config) []error {
	err := sec.Validate()
	if err == nil {
		return nil
	}
	var multi interface{ Unwrap() []error }
	if errors.As(err, &multi) {
		return multi.Unwrap()
	}
	return []error{err}
}
