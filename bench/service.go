package bench

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime/pprof"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/acme-sp/wholesale-provisioner/internal/app"
)

// trialEnv is what a consumer under test is given: the provisioner's complete
// configuration (brokers, topics, group, simulator) and a logger.
type trialEnv struct {
	cfg        app.Config
	partitions int
	log        zerolog.Logger
	logDir     string // Options.ServiceLogDir
}

// running is a consumer under test that has been started.
type running interface {
	// usage returns the CPU time used and the peak RSS reached since it started.
	usage() (usage, error)
	// stop ends it and waits until it has stopped.
	stop() error
}

// inProcess is a consumer running in a goroutine of this process. Its usage is
// the whole process's: the broker, the simulator and the observer included.
type inProcess struct {
	cpu0   time.Duration
	cancel context.CancelFunc
	done   chan error
	close  func() error
}

// startInProcess runs run in a goroutine labelled component=label for the
// profiler, until stop; close releases what run used once it has returned.
// The caller settles the process (settle) before, so that the peak RSS is the
// trial's.
func startInProcess(ctx context.Context, label string, run func(context.Context) error, close func() error) (*inProcess, error) {
	cpu0, err := processCPU()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	p := &inProcess{cpu0: cpu0, cancel: cancel, done: make(chan error, 1), close: close}
	go pprof.Do(ctx, pprof.Labels("component", label), func(ctx context.Context) {
		p.done <- run(ctx)
	})
	return p, nil
}

func (p *inProcess) usage() (usage, error) {
	cpu, err := processCPU()
	if err != nil {
		return usage{}, err
	}
	rss, err := processPeakRSS()
	if err != nil {
		return usage{}, err
	}
	return usage{cpu: cpu - p.cpu0, peakRSS: rss, scope: scopeProcess}, nil
}

func (p *inProcess) stop() error {
	p.cancel()
	err := <-p.done
	if cerr := p.close(); err == nil {
		err = cerr
	}
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// startEngine starts the provisioner in this process, wired by app.New.
func startEngine(ctx context.Context, env trialEnv) (running, error) {
	a, err := app.New(ctx, env.cfg, env.log)
	if err != nil {
		return nil, fmt.Errorf("starting the provisioner: %w", err)
	}
	return startInProcess(ctx, "engine", a.Run, a.Close)
}

// child is the provisioner running as a child process (`provisioner run`),
// configured through its environment variables. Its usage is its own.
type child struct {
	cmd    *exec.Cmd
	done   chan struct{} // closed when cmd.Wait returned
	err    error         // cmd.Wait's error, set before done closes
	stderr *tailBuffer
	last   usage // the usage read before it exited
}

// startChild starts command (e.g. the provisioner binary and "run") with env's
// configuration.
func startChild(ctx context.Context, command []string, env trialEnv) (*child, error) {
	if len(command) == 0 {
		return nil, errors.New("no command to start the provisioner as a child process")
	}
	cmd := exec.CommandContext(ctx, command[0], command[1:]...)
	// If ctx ends first (an interrupted run), stop it as stop does.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = childStopTimeout
	cmd.Env = append(withoutProvisionerEnv(os.Environ()), configEnv(env.cfg)...)
	c := &child{cmd: cmd, done: make(chan struct{}), stderr: &tailBuffer{max: 8 << 10}}
	cmd.Stdout, cmd.Stderr = c.stderr, c.stderr
	var logFile *os.File
	if env.logDir != "" {
		f, err := os.CreateTemp(env.logDir, "provisioner-*.log")
		if err != nil {
			return nil, fmt.Errorf("keeping the service's logs: %w", err)
		}
		logFile = f
		cmd.Stdout, cmd.Stderr = io.MultiWriter(c.stderr, f), io.MultiWriter(c.stderr, f)
	}
	if err := cmd.Start(); err != nil {
		if logFile != nil {
			logFile.Close()
		}
		return nil, fmt.Errorf("starting %s: %w", command[0], err)
	}
	go func() {
		c.err = cmd.Wait()
		if logFile != nil {
			logFile.Close()
		}
		close(c.done)
	}()
	return c, nil
}

func (c *child) usage() (usage, error) {
	select {
	case <-c.done:
		return usage{}, fmt.Errorf("the provisioner exited early (%v): %s", c.err, c.stderr.String())
	default:
	}
	u, err := childUsage(c.cmd.Process.Pid)
	if err == nil {
		c.last = u
	}
	return u, err
}

// childStopTimeout is how long a child may take to stop after SIGTERM.
const childStopTimeout = 30 * time.Second

// stop sends SIGTERM, as an orchestrator would, and waits for the exit; after
// childStopTimeout it kills the process.
func (c *child) stop() error {
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(childStopTimeout):
		_ = c.cmd.Process.Kill()
		<-c.done
		return fmt.Errorf("the provisioner did not stop within %s of SIGTERM: %s", childStopTimeout, c.stderr.String())
	}
	if c.err != nil {
		return fmt.Errorf("the provisioner exited with %v: %s", c.err, c.stderr.String())
	}
	return nil
}

// peakRSS returns the child's peak RSS over its whole life, once it has exited.
func (c *child) peakRSS() int64 {
	if ru, ok := c.cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		return max(c.last.peakRSS, ru.Maxrss<<10) // KiB on Linux
	}
	return c.last.peakRSS
}

// configEnv returns cfg as the PROVISIONER_* variables that `provisioner run`
// reads: every flag bound by Config.BindFlags, and the token.
func configEnv(cfg app.Config) []string {
	if cfg.HTTPAddr == "" {
		// An empty variable would leave run's default :9464, which another
		// process (a parallel test, a running service) may hold.
		cfg.HTTPAddr = "127.0.0.1:0"
	}
	fs := flag.NewFlagSet("env", flag.ContinueOnError)
	app.BindRunFlags(fs, &cfg)
	var env []string
	fs.VisitAll(func(f *flag.Flag) {
		env = append(env, app.EnvName(f.Name)+"="+f.Value.String())
	})
	return append(env, app.EnvName("webex-token")+"="+cfg.WebexToken)
}

func withoutProvisionerEnv(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		if !strings.HasPrefix(kv, app.EnvPrefix) {
			out = append(out, kv)
		}
	}
	return out
}

// tailBuffer keeps the last max bytes written to it, for error messages. It is
// safe for concurrent use.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf bytes.Buffer
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf.Write(p)
	if over := t.buf.Len() - t.max; over > 0 {
		t.buf.Next(over)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(t.buf.String())
}
