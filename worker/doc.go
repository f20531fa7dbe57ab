// Package worker consumes alert events from a durable JetStream consumer,
// deduplicates them against per-key state in a JetStream KV bucket, drives
// the TOPdesk incident lifecycle, and settles every message exactly once:
// ack, delayed nak, or dead-letter then term. It also owns the stream
// topology (provisioning), the dead-letter stream tooling (list, replay,
// purge) and the HTTP ingest that publishes events into the stream.
package worker
