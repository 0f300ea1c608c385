// Package schemas knows the event formats of the provisioner: the subscriber-order input, the subscriber-outcome output and the dead-letter record.
// It embeds their versioned JSON Schemas, decodes and validates records, and owns the words of a failure; it knows nothing of Kafka or HTTP.
package schemas
