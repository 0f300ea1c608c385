package app

import (
	"bytes"
	"encoding/json"
	"regexp"
	"testing"
	"time"
)

// TestLoggerTimesHaveMilliseconds: lines of one order a few milliseconds
// apart must be told apart and put in order; whole seconds cannot.
func TestLoggerTimesHaveMilliseconds(t *testing.T) {
	var buf bytes.Buffer
	log := NewLogger(&buf, "info", "json")
	log.Info().Dur("took_ms", 1500*time.Microsecond).Msg("order finished")
	var line struct {
		Time   string  `json:"time"`
		TookMS float64 `json:"took_ms"`
	}
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("%s: %v", buf.Bytes(), err)
	}
	if !regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`).MatchString(line.Time) {
		t.Errorf("time %q: want RFC 3339 in UTC with milliseconds", line.Time)
	}
	if at, err := time.Parse(time.RFC3339Nano, line.Time); err != nil || time.Since(at) > time.Minute {
		t.Errorf("time %q does not parse as now: %v", line.Time, err)
	}
	if line.TookMS != 1.5 {
		t.Errorf("took_ms = %v, want 1.5 (milliseconds, as the name says)", line.TookMS)
	}
}
