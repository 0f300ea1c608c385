// Package dlq reads the dead-letter topic to inspect its records and to re-drive
// them: replay re-publishes the original orders, byte for byte, to the orders topic.
package dlq
