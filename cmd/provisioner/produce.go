package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/acme-sp/wholesale-provisioner/internal/app"
	"io"
	"os"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/acme-sp/wholesale-provisioner/internal/kafkasec"
	"github.com/acme-sp/wholesale-provisioner/internal/sample"
)

// produceCmd is `provisioner produce`: what an upstream billing system sends.
func produceCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		brokers, topic, file, runID string
		generate                    int
		sec                         kafkasec.Config
	)
	topic = app.DefaultConfig().OrdersTopic
	fs := newFlagSet("produce", "Publish subscriber orders to a topic: each line of a JSON-lines file (- for stdin),\n"+
		"or N generated valid orders. Records are keyed by customerId/email, acknowledged by all replicas.", stderr)
	fs.StringVar(&brokers, "brokers", "", "Kafka bootstrap servers, comma-separated host:port")
	fs.StringVar(&topic, "orders-topic", topic, "topic to publish to")
	fs.StringVar(&file, "file", "", "JSON-lines file of orders, one per line (- reads stdin)")
	fs.IntVar(&generate, "generate", 0, "generate this many valid sample orders instead of reading a file")
	fs.StringVar(&runID, "run-id", "", "prefix of generated order ids and emails (default: the current time)")
	app.BindKafkaSecurityFlags(fs, &sec)
	if err := parse(fs, args, osLookupEnv); err != nil {
		return usageError{err}
	}
	app.LoadKafkaSecrets(&sec, osLookupEnv)
	if err := sec.Validate(); err != nil {
		return usageError{err}
	}
	transport, err := sec.Transport()
	if err != nil {
		return usageError{err}
	}
	defer transport.CloseIdleConnections()
	switch {
	case brokers == "":
		return usageError{fmt.Errorf("--brokers (%s) is required", app.EnvName("brokers"))}
	case (file == "") == (generate <= 0):
		return usageError{errors.New("give exactly one of --file and --generate N")}
	}
	if runID == "" {
		runID = "ord" + time.Now().UTC().Format("20060102T150405")
	}
	w := &kafka.Writer{
		Addr:                   kafka.TCP(app.SplitList(brokers)...),
		Topic:                  topic,
		Balancer:               kafka.Murmur2Balancer{Consistent: true},
		RequiredAcks:           kafka.RequireAll,
		BatchTimeout:           5 * time.Millisecond,
		AllowAutoTopicCreation: false,
		Transport:              transport,
	}
	defer w.Close()

	var msgs []kafka.Message
	if generate > 0 {
		now := time.Now()
		for i := 0; i < generate; i++ {
			msgs = append(msgs, sample.Message(sample.Order(runID, i, now)))
		}
	} else {
		var err error
		if msgs, err = readLines(file); err != nil {
			return err
		}
	}
	const batch = 1000
	for i := 0; i < len(msgs); i += batch {
		end := min(i+batch, len(msgs))
		if err := w.WriteMessages(ctx, msgs[i:end]...); err != nil {
			return fmt.Errorf("publishing orders %d-%d to %s: %w", i, end-1, topic, err)
		}
	}
	fmt.Fprintf(stdout, "published %d orders to %s\n", len(msgs), topic)
	return nil
}

// readLines reads one record per non-empty line. The key is the order's
// customerId/email when the line is an object that has them; malformed lines
// are sent as they are, unkeyed, so that a test can feed the dead-letter path.
func readLines(path string) ([]kafka.Message, error) {
	var r io.Reader = os.Stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, usageError{fmt.Errorf("--file: %w", err)}
		}
		defer f.Close()
		r = f
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	var msgs []kafka.Message
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var head struct {
			CustomerID string `json:"customerId"`
			Email      string `json:"email"`
		}
		m := kafka.Message{Value: []byte(line)}
		if json.Unmarshal(m.Value, &head) == nil && head.CustomerID != "" && head.Email != "" {
			m.Key = []byte(head.CustomerID + "/" + head.Email)
		}
		msgs = append(msgs, m)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return msgs, nil
}
