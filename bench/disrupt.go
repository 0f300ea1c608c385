package bench

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// The disruptions a scenario can put its group of instances through once a
// fifth of its orders is answered (Scenario.Disrupt).
const (
	// DisruptKill kills one instance with SIGKILL (an OOM kill, a lost node)
	// and starts a replacement with a new identity 5 s later, as a Kubernetes
	// Deployment does.
	DisruptKill = "kill"
	// DisruptRolling stops each instance in turn with SIGTERM and starts its
	// replacement at once, as a Deployment rollout does.
	DisruptRolling = "rolling"
	// DisruptStatic kills one statically identified instance with SIGKILL and
	// starts it again at once with the same group instance id, as a
	// StatefulSet does.
	DisruptStatic = "static"
	// DisruptBroker kills the real broker with SIGKILL and starts it again
	// 15 s later (Options.BrokerControl); recovery is timed from when it
	// answers again.
	DisruptBroker = "broker"
)

// brokerDownFor is how long a killed broker stays down.
const brokerDownFor = 15 * time.Second

// replacementDelay is how long after a kill its replacement starts.
const replacementDelay = 5 * time.Second

// disruptionWindow is the time after a disruption's event over which the
// group's call rate is given (Trial.CallsPerSecAfter): as long as the
// group-kill bar gives the dead member's partitions to be served again.
const disruptionWindow = killServedAgainMs * time.Millisecond

// rollingPause is the time between two instances of a rolling restart.
const rollingPause = 3 * time.Second

// disruption runs a scenario's disruption beside a trial.
type disruption struct {
	done chan struct{}
	// at is when the event the recovery is timed from happened: the kill, the
	// static restart, the first SIGTERM; zero if it did not start.
	at  time.Time
	err error
}

// instanceEnv is the configuration of instance i of a trial's group: with a
// group instance id when the scenario restarts a static member.
func (r *runner) instanceEnv(env trialEnv, i int) trialEnv {
	if r.sc.Disrupt == DisruptStatic {
		env.cfg.Consumer.GroupInstanceID = fmt.Sprintf("bench-%d", i)
	}
	return env
}

// disrupt starts the scenario's disruption of g, whose children it replaces
// in place; wait for done before reading g.
func (r *runner) disrupt(ctx context.Context, g instances, env trialEnv, orders int, obs *observer, sim *simulator) *disruption {
	d := &disruption{done: make(chan struct{})}
	go func() {
		defer close(d.done)
		if !obs.waitAnswered(ctx, orders/5) {
			return
		}
		sim.watchGaps()
		d.err = r.runDisruption(ctx, g, env, &d.at)
	}()
	return d
}

func (r *runner) runDisruption(ctx context.Context, g instances, env trialEnv, at *time.Time) error {
	if r.sc.Disrupt == DisruptBroker {
		return r.restartBroker(ctx, at)
	}
	first, ok := g[0].(*child)
	if !ok {
		return fmt.Errorf("scenario %s: a disruption needs the instances as child processes (a service command)", r.sc.Name)
	}
	switch r.sc.Disrupt {
	case DisruptKill:
		*at = time.Now()
		first.kill()
		if sleep(ctx, replacementDelay) != nil {
			return ctx.Err()
		}
		c, err := startChild(ctx, r.opts.ServiceCommand, r.instanceEnv(env, len(g)))
		if err != nil {
			return err
		}
		g[0] = c
	case DisruptStatic:
		first.kill()
		c, err := startChild(ctx, r.opts.ServiceCommand, r.instanceEnv(env, 0))
		if err != nil {
			return err
		}
		*at = time.Now()
		g[0] = c
	case DisruptRolling:
		for i := range g {
			if i == 0 {
				*at = time.Now()
			}
			if err := g[i].stop(); err != nil {
				return fmt.Errorf("stopping instance %d: %w", i, err)
			}
			c, err := startChild(ctx, r.opts.ServiceCommand, r.instanceEnv(env, len(g)+i))
			if err != nil {
				return err
			}
			g[i] = c
			if sleep(ctx, rollingPause) != nil {
				return ctx.Err()
			}
		}
	default:
		return fmt.Errorf("scenario %s: unknown disruption %q", r.sc.Name, r.sc.Disrupt)
	}
	return nil
}

// restartBroker kills the broker, waits brokerDownFor and starts it again;
// at is when it answers again.
func (r *runner) restartBroker(ctx context.Context, at *time.Time) error {
	if len(r.opts.BrokerControl) == 0 || r.broker.Name() != "real" {
		return fmt.Errorf("scenario %s: needs a real broker it may kill and a command that controls it (--broker-control, e.g. scripts/kafka-local)", r.sc.Name)
	}
	control := func(args ...string) error {
		argv := append(slices.Clone(r.opts.BrokerControl), args...)
		out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, bytes.TrimSpace(out))
		}
		return nil
	}
	if err := control("stop", "--kill"); err != nil {
		return err
	}
	if err := sleep(ctx, brokerDownFor); err != nil {
		return err
	}
	// It returns once the broker answers admin requests.
	if err := control("start"); err != nil {
		return err
	}
	*at = time.Now()
	return nil
}

// kill ends the child with SIGKILL: no drain, no commit, no leaving the group.
func (c *child) kill() {
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	<-c.done
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

// gaps is the longest time without an API call since watching began.
type gaps struct {
	from, last, longest atomic.Int64 // Unix nanoseconds; longest in nanoseconds
}

func (g *gaps) call(now int64) {
	prev := g.last.Swap(now)
	from := g.from.Load()
	if from == 0 || prev == 0 {
		return
	}
	gap := now - max(prev, from)
	for {
		l := g.longest.Load()
		if gap <= l || g.longest.CompareAndSwap(l, gap) {
			return
		}
	}
}

// servedAgain is how long after at every partition that had outcomes after at
// had its first one: when the partitions of a killed member are served again.
func servedAgain(times map[int][]int64, at time.Time) time.Duration {
	if at.IsZero() {
		return 0
	}
	t0 := at.UnixMilli()
	var worst int64
	for _, ts := range times {
		i, _ := slices.BinarySearch(ts, t0)
		if i < len(ts) {
			worst = max(worst, ts[i]-t0)
		}
	}
	return time.Duration(worst) * time.Millisecond
}
