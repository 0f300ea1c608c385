package app

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/acme-sp/wholesale-provisioner/consumer"
)

// health answers the orchestrator's probes: /healthz says the process lives,
// /readyz says it is doing its job (in the group with an assignment, broker
// reachable, Webex not in a configuration fault).
type health struct {
	consumer *consumer.Consumer
	client   *kafka.Client

	mu       sync.Mutex
	kafkaErr error
	checked  time.Time
}

// Check is one readiness condition.
type Check struct {
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// Readiness is the body of /readyz.
type Readiness struct {
	Ready  bool             `json:"ready"`
	Checks map[string]Check `json:"checks"`
}

// probeKafka asks the broker for its API versions every interval, so that
// readiness reflects a broker that went away even while nothing is consumed.
func (h *health) probeKafka(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		pctx, cancel := context.WithTimeout(ctx, interval)
		// Not Metadata: kafka-go's transport answers it from its cache and keeps
		// the last known layout while the brokers are gone.
		_, err := h.client.ApiVersions(pctx, &kafka.ApiVersionsRequest{})
		cancel()
		if ctx.Err() != nil {
			return
		}
		h.mu.Lock()
		h.kafkaErr, h.checked = err, time.Now()
		h.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (h *health) readiness() Readiness {
	r := Readiness{Ready: true, Checks: map[string]Check{}}
	set := func(name string, ok bool, detail string) {
		r.Checks[name] = Check{OK: ok, Detail: detail}
		r.Ready = r.Ready && ok
	}
	h.mu.Lock()
	kerr, checked := h.kafkaErr, h.checked
	h.mu.Unlock()
	switch {
	case checked.IsZero():
		set("kafka", false, "not checked yet")
	case kerr != nil:
		set("kafka", false, "broker unreachable: "+kerr.Error())
	default:
		set("kafka", true, "reachable at "+checked.UTC().Format(time.RFC3339))
	}
	s := h.consumer.Stats()
	if s.Joined {
		set("consumer_group", true, fmt.Sprintf("%d partitions assigned", len(s.Partitions)))
	} else {
		set("consumer_group", false, "not a member of the group yet")
	}
	if s.Paused {
		set("webex", false, fmt.Sprintf("configuration fault since %s: %v", s.PausedSince.UTC().Format(time.RFC3339), s.PauseCause))
	} else {
		set("webex", true, "no configuration fault")
	}
	return r
}

func (h *health) handler() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		r := h.readiness()
		w.Header().Set("Content-Type", "application/json")
		if !r.Ready {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(w).Encode(r)
	})
	return mux
}
