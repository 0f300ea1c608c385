// Package provisioning knows the Webex for Wholesale Subscribers and Customers
// APIs and the order workflows (precheck, provision, follow the status); it knows nothing of Kafka.
//
// Every error the API or the transport produces is classified once, by Classify,
// as transient, permanent or a configuration fault. The Workflow retries transient
// errors with exponential backoff that honours Retry-After, never repeats a create
// whose fate is unknown before looking the subscriber up, and turns a duplicate for
// the same customer into success. Subscriber orders whose customer is not
// provisioned yet wait for it (customerwait.go) through what the process
// knows of customers (customerbook.go).
package provisioning
