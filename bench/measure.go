package bench

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"syscall"
	"time"
)

// usage is the CPU time and peak resident memory of a consumer under test, and
// whose they are. The figures come from getrusage and Linux's /proc.
type usage struct {
	cpu     time.Duration
	peakRSS int64 // bytes
	// scope is "process" when the figures cover this whole process (the broker,
	// simulator and observer included), "service" for a child process's own.
	scope string
}

// Scopes of usage figures.
const (
	scopeProcess = "process"
	scopeService = "service"
)

// processCPU returns the user and system CPU time this process has used.
func processCPU() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, fmt.Errorf("reading rusage: %w", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}

// settle collects garbage and returns it to the OS, then resets this process's
// peak RSS to its current RSS, so that the next trial's peak is its own.
func settle() {
	runtime.GC()
	debug.FreeOSMemory()
	// Linux resets VmHWM on "5" (since 4.0); where it cannot, the peak is the
	// process's lifetime peak, which peakRSS then reports.
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

// processPeakRSS returns this process's peak RSS since the last settle.
func processPeakRSS() (int64, error) {
	if kib, err := statusKiB("/proc/self/status", "VmHWM:"); err == nil {
		return kib << 10, nil
	}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, fmt.Errorf("reading rusage: %w", err)
	}
	return ru.Maxrss << 10, nil // KiB on Linux
}

// machineBusy returns the CPU time all processes of the machine have used:
// /proc/stat's cpu line without idle and iowait, and without guest time, which
// user time already holds.
func machineBusy() (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, fmt.Errorf("reading the machine's CPU time: %w", err)
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	fields := bytes.Fields(line)
	if len(fields) < 8 || string(fields[0]) != "cpu" {
		return 0, errors.New("reading the machine's CPU time: unexpected /proc/stat")
	}
	var ticks int64
	for i, f := range fields[1:] {
		if i == 3 || i == 4 || i >= 8 { // idle, iowait, guest, guest_nice
			continue
		}
		n, err := strconv.ParseInt(string(f), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("reading the machine's CPU time: %w", err)
		}
		ticks += n
	}
	return time.Duration(ticks) * 10 * time.Millisecond, nil
}

// otherCPU measures the CPU time that processes other than this one and its
// child under test use during a trial: a real broker's, and any other work on
// the machine, which makes the figures noisy.
type otherCPU struct {
	machine0, self0 time.Duration
}

func startOtherCPU() (otherCPU, error) {
	m, err := machineBusy()
	if err != nil {
		return otherCPU{}, err
	}
	s, err := processCPU()
	return otherCPU{machine0: m, self0: s}, err
}

// since returns the other processes' CPU time since start; child is the CPU
// time of the child under test, if any.
func (o otherCPU) since(child time.Duration) (time.Duration, error) {
	m, err := machineBusy()
	if err != nil {
		return 0, err
	}
	s, err := processCPU()
	if err != nil {
		return 0, err
	}
	return max(0, (m-o.machine0)-(s-o.self0)-child), nil
}

// childUsage reads a running child's CPU time and peak RSS from /proc.
func childUsage(pid int) (usage, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return usage{}, fmt.Errorf("reading the child's CPU time: %w", err)
	}
	// The command name, in parentheses, may hold spaces: count fields after it.
	rest := stat[bytes.LastIndexByte(stat, ')')+1:]
	fields := bytes.Fields(rest)
	if len(fields) < 13 {
		return usage{}, errors.New("reading the child's CPU time: short /proc stat line")
	}
	// Fields 14 and 15 of stat (utime, stime) are the 12th and 13th after ")".
	var ticks int64
	for _, f := range fields[11:13] {
		n, err := strconv.ParseInt(string(f), 10, 64)
		if err != nil {
			return usage{}, fmt.Errorf("reading the child's CPU time: %w", err)
		}
		ticks += n
	}
	kib, err := statusKiB(fmt.Sprintf("/proc/%d/status", pid), "VmHWM:")
	if err != nil {
		return usage{}, fmt.Errorf("reading the child's peak RSS: %w", err)
	}
	// USER_HZ is 100 on every Linux architecture Go supports.
	return usage{cpu: time.Duration(ticks) * 10 * time.Millisecond, peakRSS: kib << 10, scope: scopeService}, nil
}

// statusKiB reads a "Name:   123 kB" line of a /proc status file.
func statusKiB(path, name string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	for line := range bytes.Lines(b) {
		if rest, ok := bytes.CutPrefix(line, []byte(name)); ok {
			f := bytes.Fields(rest)
			if len(f) == 0 {
				break
			}
			return strconv.ParseInt(string(f[0]), 10, 64)
		}
	}
	return 0, fmt.Errorf("%s has no %s line", path, name)
}

// percentile returns the p-th percentile (0 < p ≤ 100) of sorted values by the
// nearest-rank method, or 0 for none.
func percentile(sorted []int64, p float64) int64 {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

// median returns the median of xs (the mean of the middle two for an even
// count), or 0 for none.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}
