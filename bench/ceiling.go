package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/acme-sp/wholesale-provisioner/internal/sample"
	"github.com/acme-sp/wholesale-provisioner/provisioning"
)

// Ceiling is the machine's ceiling for the provisioner's work, measured in the
// same run: the Kafka half alone, the HTTP half alone, and what the two allow
// together for an order making CallsPerOrder calls.
type Ceiling struct {
	// KafkaRecordsPerSec is the bare Kafka pipe: consume, write one record
	// (acks=all), commit; no HTTP. Measured on the same orders as the engine.
	KafkaRecordsPerSec float64 `json:"kafkaRecordsPerSec"`
	// HTTPRequestsPerSec is bare HTTP round trips to a server like the
	// simulator's, with an empty handler, from a client set up like the service's.
	HTTPRequestsPerSec float64 `json:"httpRequestsPerSec"`
	// CallsPerOrder is the engine's API calls per order.
	CallsPerOrder float64 `json:"callsPerOrder"`
	// OrdersPerSec is 1 / (1/KafkaRecordsPerSec + CallsPerOrder/HTTPRequestsPerSec).
	OrdersPerSec float64 `json:"ordersPerSec"`
	// Pipe is the kafka pipe's trial.
	Pipe Trial `json:"pipe"`
}

// combine fills OrdersPerSec from the two halves.
func (c *Ceiling) combine() {
	if c.KafkaRecordsPerSec > 0 && c.HTTPRequestsPerSec > 0 {
		c.OrdersPerSec = 1 / (1/c.KafkaRecordsPerSec + c.CallsPerOrder/c.HTTPRequestsPerSec)
	}
}

// pipeBatch is the most records the kafka pipe writes and commits at once.
const pipeBatch = 2000

// kafkaPipe is the bare Kafka pipe: a group Reader over all partitions feeds a
// channel; a writer takes whatever is there (up to pipeBatch), writes one record
// per record consumed with acks=all, then commits them. Fetching goes on while
// a batch is written. No HTTP, no decoding: the Kafka half's ceiling.
type kafkaPipe struct {
	cfg kafka.ReaderConfig
	w   *kafka.Writer
}

// startPipe starts the kafka pipe in this process.
func startPipe(ctx context.Context, env trialEnv) (running, error) {
	cfg := env.cfg
	p := &kafkaPipe{
		cfg: kafka.ReaderConfig{
			Brokers: cfg.Brokers, GroupID: cfg.GroupID, Topic: cfg.OrdersTopic,
			StartOffset: kafka.FirstOffset, MaxWait: 500 * time.Millisecond,
			MaxBytes: 16 << 20, QueueCapacity: pipeBatch,
		},
		w: &kafka.Writer{
			Addr: kafka.TCP(cfg.Brokers...), Topic: cfg.OutcomesTopic,
			Balancer: kafka.Murmur2Balancer{Consistent: true}, RequiredAcks: kafka.RequireAll,
			BatchSize: pipeBatch, BatchBytes: 16 << 20, BatchTimeout: time.Millisecond,
			Transport: &kafka.Transport{},
		},
	}
	return startInProcess(ctx, "kafka-pipe", p.run, p.w.Close)
}

// run pipes records until ctx ends.
func (p *kafkaPipe) run(ctx context.Context) error {
	r := kafka.NewReader(p.cfg)
	defer r.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	records := make(chan kafka.Message, 2*pipeBatch)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(records)
		for {
			m, err := r.FetchMessage(ctx)
			if err != nil {
				return // ctx ended, or the reader broke: forward reports no progress
			}
			select {
			case records <- m:
			case <-ctx.Done():
				return
			}
		}
	}()
	err := p.forward(ctx, r, records)
	cancel()
	wg.Wait()
	return err
}

// forward writes and commits what the fetcher delivers, batch by batch.
func (p *kafkaPipe) forward(ctx context.Context, r *kafka.Reader, records <-chan kafka.Message) error {
	in := make([]kafka.Message, 0, pipeBatch)
	out := make([]kafka.Message, 0, pipeBatch)
	for m := range records {
		in = append(in[:0], m)
	drain:
		for len(in) < pipeBatch {
			select {
			case m, ok := <-records:
				if !ok {
					break drain
				}
				in = append(in, m)
			default:
				break drain
			}
		}
		out = out[:0]
		for _, m := range in {
			out = append(out, kafka.Message{Key: m.Key, Value: m.Value, Headers: m.Headers})
		}
		if err := p.w.WriteMessages(ctx, out...); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("writing %d records: %w", len(out), err)
		}
		if err := r.CommitMessages(ctx, in...); err != nil && ctx.Err() == nil {
			return fmt.Errorf("committing %d records: %w", len(in), err)
		}
	}
	return nil
}

// measureHTTP makes bare HTTP round trips for d, from workers goroutines, to a
// server like the simulator's whose handler reads the body and answers {}. The
// client is set up like the service's (keep-alive, 512 idle connections) and
// sends a precheck-sized body with a bearer token. It returns requests per second.
func measureHTTP(ctx context.Context, workers int, d time.Duration) (float64, error) {
	addr, stop, err := serve(ctx, http.HandlerFunc(emptyHandler), "http-server")
	if err != nil {
		return 0, err
	}
	defer stop()
	body, err := precheckBody()
	if err != nil {
		return 0, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns, tr.MaxIdleConnsPerHost = 512, 512
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	url := "http://" + addr + "/v1" + provisioning.PathValidate

	var (
		n    atomic.Int64
		errs = make([]error, workers)
		wg   sync.WaitGroup
	)
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	start := time.Now()
	for i := range workers {
		wg.Add(1)
		go pprof.Do(ctx, pprof.Labels("component", "http-client"), func(ctx context.Context) {
			defer wg.Done()
			errs[i] = roundTrips(ctx, client, url, body, &n)
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	for _, err := range errs {
		if err != nil {
			return 0, err
		}
	}
	return float64(n.Load()) / elapsed.Seconds(), nil
}

// roundTrips posts body to url until ctx ends, counting the answers in n.
func roundTrips(ctx context.Context, client *http.Client, url string, body []byte, n *atomic.Int64) error {
	for ctx.Err() == nil {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			return fmt.Errorf("building a request: %w", err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+simToken)
		resp, err := client.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("calling the empty handler: %w", err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		n.Add(1)
	}
	return nil
}

func emptyHandler(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte("{}"))
}

// precheckBody is the body of a sample order's precheck call.
func precheckBody() ([]byte, error) {
	o := sample.Order("ceiling", 1, time.Now())
	b, err := json.Marshal(provisioning.PrecheckRequest{
		CustomerID: o.CustomerID, Email: o.Email, Packages: o.Packages,
		ProvisioningParameters: &provisioning.ProvisioningParameters{
			FirstName: o.ProvisioningParameters.FirstName, LastName: o.ProvisioningParameters.LastName,
			PrimaryPhoneNumber: o.ProvisioningParameters.PrimaryPhoneNumber, Extension: o.ProvisioningParameters.Extension,
		},
	})
	if err != nil {
		return nil, fmt.Errorf("encoding a precheck body: %w", err)
	}
	return b, nil
}
