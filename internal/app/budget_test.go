package app

import (
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"
)

func TestPauseOf(t *testing.T) {
	log := zerolog.Nop()
	p := newPauses("me", &log)
	at := time.Unix(1_800_000_000, 0)
	for _, tc := range []struct {
		name  string
		value string
		age   time.Duration
		left  time.Duration
		bad   string
	}{
		{"another's pause", `{"schemaVersion":1,"instance":"other","pauseMs":3000}`, time.Second, 2 * time.Second, ""},
		{"over already", `{"schemaVersion":1,"instance":"other","pauseMs":1000}`, 2 * time.Second, -time.Second, ""},
		{"my own", `{"schemaVersion":1,"instance":"me","pauseMs":3000}`, 0, 0, ""},
		{"not JSON", `{"schemaVersion":1,`, 0, 0, "not JSON"},
		{"no pause", `{"schemaVersion":1,"instance":"other","pauseMs":0}`, 0, 0, "not a pause"},
		{"another version", `{"schemaVersion":2,"instance":"other","pauseMs":10}`, 0, 0, "not a pause"},
		{"too large", `{"schemaVersion":1,"instance":"` + strings.Repeat("x", 600) + `","pauseMs":10}`, 0, 0, "more than a pause's"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, left, err := p.pauseOf(kafka.Message{Value: []byte(tc.value), Time: at}, at.Add(tc.age))
			switch {
			case tc.bad != "" && (err == nil || !strings.Contains(err.Error(), tc.bad)):
				t.Errorf("error %v, want one saying %q", err, tc.bad)
			case tc.bad == "" && (err != nil || left != tc.left):
				t.Errorf("left %v, error %v; want %v", left, err, tc.left)
			}
		})
	}
}

func TestOnPauseKeepsTheLongest(t *testing.T) {
	log := zerolog.Nop()
	p := newPauses("me", &log)
	p.onPause(time.Second)
	p.onPause(3 * time.Second) // the channel is full: merged, not blocked
	p.onPause(2 * time.Second)
	if got := <-p.told; got != 3*time.Second {
		t.Errorf("told %v, want the longest unsent pause, 3s", got)
	}
	select {
	case d := <-p.told:
		t.Errorf("a second pause %v waiting, want one", d)
	default:
	}
}
