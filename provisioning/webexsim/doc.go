// Package webexsim is an in-memory simulator of the Webex for Wholesale
// Subscribers and Customers APIs with fault injection, for tests, the demo,
// benchmarks and standalone use.
package webexsim
