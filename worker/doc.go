// Package worker consumes alert events from a durable JetStream consumer,
// deduplicates them against per-key state in a JetStream KV bucket, drives
// the TOPdesk incident lifecycle, and settles every message exactly once:
// ack, delayed nak, or dead-letter then term (through package dlq). It also
// owns the stream topology (provisioning). The dead-letter format and
// tooling live in package dlq, the HTTP ingest in package ingest.
package worker
