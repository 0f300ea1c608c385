// Package e2e checks the observability of the provisioner with the real tools:
// the service runs in-process against a real Kafka broker (KAFKA_BROKERS) and the
// Webex simulator, and a real Prometheus server (the `prometheus` binary on
// PATH) scrapes it and evaluates deploy/prometheus/alerts.yml. The tests ask
// Prometheus's HTTP API what an operator would see.
//
// Without KAFKA_BROKERS or the prometheus binary the tests skip with a one-line
// reason; with CI set they fail instead, because CI installs both.
//
// TestDashboardPicture (only with PROVISIONER_DASHBOARD_PNG set) runs a longer
// scenario and draws docs/dashboard.png with scripts/render-dashboard.
package e2e
