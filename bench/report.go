package bench

import (
	"fmt"
	"io"
	"text/tabwriter"
)

// WriteText writes res as a table: the engine and the baseline (and the
// ceiling), then the bars.
func WriteText(w io.Writer, res Result) error {
	sc := res.Scenario
	title := fmt.Sprintf("%s · %s broker", sc.Name, res.Broker)
	switch {
	case res.Smoke:
		title += " · smoke (bars not judged)"
	case res.Repeat > 1:
		title += fmt.Sprintf(" · median of %d", res.Repeat)
	}
	fmt.Fprintf(w, "\n%s\n  %s\n", title, sc.Describe())
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "  consumer\torders\torders/s\tp50\tp99\tCPU s\tCPU µs/order\tpeak RSS\tAPI req/s\t429s\tcalls/order\t")
	writeTrial(tw, res.Engine)
	writeTrial(tw, res.Baseline)
	if c := res.Ceiling; c != nil {
		writeTrial(tw, c.Pipe)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if c := res.Ceiling; c != nil {
		fmt.Fprintf(w, "  ceiling: kafka pipe %.0f records/s, bare HTTP %.0f requests/s, %.2f calls/order → %.0f orders/s\n",
			c.KafkaRecordsPerSec, c.HTTPRequestsPerSec, c.CallsPerOrder, c.OrdersPerSec)
	}
	fmt.Fprintf(w, "  CPU and RSS: %s\n", scopeNote(res.Engine.Scope, res.Broker))
	fmt.Fprintf(w, "  other processes' CPU meanwhile (%s): engine %.0f%%, baseline %.0f%% of the machine\n",
		othersNote(res.Broker), 100*res.Engine.OtherCPUShare(), 100*res.Baseline.OtherCPUShare())
	for _, b := range res.Bars {
		fmt.Fprintf(w, "  bar %-5s %s: %s\n", verdict(b), b.Requirement, b.Measured)
	}
	return nil
}

func writeTrial(w io.Writer, t Trial) {
	orders := fmt.Sprintf("%d", t.Answered)
	if t.Answered != t.Orders {
		orders = fmt.Sprintf("%d of %d", t.Answered, t.Orders)
	}
	if t.Partial {
		orders += " (time bound)"
	}
	fmt.Fprintf(w, "  %s\t%s\t%.1f\t%s\t%s\t%.2f\t%.0f\t%.0f MiB\t%.0f\t%d\t%.2f\t\n",
		t.Consumer, orders, t.OrdersPerSec, ms(t.P50Ms), ms(t.P99Ms), t.CPUSeconds, t.CPUMicrosPerOrder,
		t.PeakRSSMiB, t.APIRequestsPerSec, t.TooMany, t.CallsPerOrder)
}

// ms formats milliseconds.
func ms(v float64) string {
	if v >= 10_000 {
		return fmt.Sprintf("%.1fs", v/1000)
	}
	return fmt.Sprintf("%.0fms", v)
}

func scopeNote(scope, broker string) string {
	whole := "this whole process's: consumer, in-process broker, simulator and observer"
	if broker == "real" {
		whole = "this whole process's: consumer, simulator and observer (not the real broker's)"
	}
	if scope == scopeService {
		return "the engine's are its child process's own; the others' are " + whole
	}
	return whole
}

func othersNote(broker string) string {
	if broker == "real" {
		return "the real broker, and any other work: noise"
	}
	return "any other work on the machine: noise"
}

func verdict(b Bar) string {
	switch {
	case !b.Judged:
		return "-"
	case b.Pass:
		return "PASS"
	default:
		return "FAIL"
	}
}
