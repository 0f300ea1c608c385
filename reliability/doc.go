// Package reliability holds the fault tests of the provisioner against a real Kafka broker:
// crash, broker outage, rebalance storm, API storm, configuration fault, graceful shutdown, poison record.
package reliability
