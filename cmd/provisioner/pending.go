package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/acme-sp/wholesale-provisioner/internal/app"
	"github.com/acme-sp/wholesale-provisioner/internal/kafkasec"
	"github.com/acme-sp/wholesale-provisioner/internal/pipeline"
	"github.com/acme-sp/wholesale-provisioner/internal/redact"
)

// pendingCmd is `provisioner pending`: how many orders wait on their end
// user, in which Webex status, since when and until when.
func pendingCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var brokers, topic string
	var asJSON bool
	topic = app.FollowUpsTopicOf(app.DefaultConfig().OrdersTopic)
	fs := newFlagSet("pending", "Read the follow-up topic (without a consumer group, up to its end) and list the orders whose\n"+
		"subscriber waits on its end user: counts by Webex status, the oldest, the next deadlines (emails masked).", stderr)
	fs.StringVar(&brokers, "brokers", "", "Kafka bootstrap servers, comma-separated host:port")
	fs.StringVar(&topic, "followups-topic", topic, "the follow-up topic")
	fs.BoolVar(&asJSON, "json", false, "write the list as JSON")
	var sec kafkasec.Config
	app.BindKafkaSecurityFlags(fs, &sec)
	if err := parse(fs, args, osLookupEnv); err != nil {
		return usageError{err}
	}
	if brokers == "" {
		return usageError{fmt.Errorf("--brokers (%s) is required", app.EnvName("brokers"))}
	}
	app.LoadKafkaSecrets(&sec, osLookupEnv)
	if err := sec.Validate(); err != nil {
		return usageError{err}
	}
	d, err := sec.Dialer()
	if err != nil {
		return usageError{err}
	}
	tr, err := sec.Transport()
	if err != nil {
		return usageError{err}
	}
	fus, err := pipeline.ReadFollowUps(ctx, app.SplitList(brokers), d, tr, topic)
	if err != nil {
		return err
	}
	now := time.Now()
	if asJSON {
		type row struct {
			OrderID     string    `json:"orderId"`
			Email       string    `json:"email"`
			Status      string    `json:"webexStatus"`
			Since       time.Time `json:"since"`
			Deadline    time.Time `json:"deadline"`
			ConsentSent bool      `json:"consentMoveSent"`
		}
		rows := make([]row, 0, len(fus))
		for _, f := range fus {
			rows = append(rows, row{f.OrderID, redact.Email(f.Email), f.Subscriber.WebexStatus, f.Since, f.Deadline, f.ConsentMoveSentAt != nil})
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
	}
	byStatus := map[string]int{}
	for _, f := range fus {
		byStatus[f.Subscriber.WebexStatus]++
	}
	fmt.Fprintf(stdout, "%d orders wait on their end user.\n", len(fus))
	if len(fus) == 0 {
		return nil
	}
	statuses := make([]string, 0, len(byStatus))
	for s := range byStatus {
		statuses = append(statuses, s)
	}
	sort.Strings(statuses)
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\nWEBEX STATUS\tORDERS")
	for _, s := range statuses {
		fmt.Fprintf(tw, "%s\t%d\n", s, byStatus[s])
	}
	tw.Flush()
	tw = tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\nORDER\tEMAIL\tWEBEX STATUS\tWAITING\tDEADLINE IN\tCONSENT EMAIL SENT")
	for i, f := range fus {
		if i == 20 {
			fmt.Fprintf(tw, "… %d more\t\t\t\t\t\n", len(fus)-i)
			break
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%v\n", f.OrderID, redact.Email(f.Email), f.Subscriber.WebexStatus,
			now.Sub(f.Since).Round(time.Second), f.Deadline.Sub(now).Round(time.Minute), f.ConsentMoveSentAt != nil)
	}
	return tw.Flush()
}
