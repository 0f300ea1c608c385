// Package bench measures the provisioner against the Webex simulator and Kafka,
// beside a plain kafka-go baseline; `provisioner bench` runs it (BENCHMARKS.md).
package bench
