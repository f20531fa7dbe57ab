// Package dlq owns alertdesk's dead-letter stream: the format of a dead
// letter (the original message plus Alertdesk-* headers), publishing one,
// and listing, replaying and purging them (PRODUCT.md, "Failures and the
// dead-letter stream").
package dlq

// Headers that a dead-lettered message carries besides the original ones
// (docs/operations.md, "Failures and the dead-letter stream").
const (
	HeaderOriginalSubject = "Alertdesk-Original-Subject"
	HeaderOriginalSeq     = "Alertdesk-Original-Seq"
	HeaderError           = "Alertdesk-Error"
	HeaderErrorClass      = "Alertdesk-Error-Class"
	HeaderDeliveries      = "Alertdesk-Deliveries"
	HeaderFailedAt        = "Alertdesk-Failed-At"
	HeaderAlertKey        = "Alertdesk-Alert-Key"
	// HeaderOriginalTime is the JetStream publish time (RFC 3339 with
	// nanoseconds) of the message that first carried the event. A replay
	// keeps it, so the worker can order a replayed event by when it was
	// first published rather than by when it was replayed.
	HeaderOriginalTime = "Alertdesk-Original-Time"
	// HeaderReplayOf marks a message republished from the DLQ; its value is
	// the DLQ stream sequence it was replayed from.
	HeaderReplayOf = "Alertdesk-Replay-Of"
)

// SubjectPrefix is prepended to the original subject of a dead letter.
const SubjectPrefix = "alertdesk.dlq."

// Class says why a message was dead-lettered.
type Class string

// The dead-letter classes.
const (
	ClassInvalid   Class = "invalid"   // not JSON, not an alert, no key
	ClassTemplate  Class = "template"  // the mapping's template failed
	ClassRejected  Class = "rejected"  // TOPdesk answered a 4xx other than 401/403/408/429
	ClassExhausted Class = "exhausted" // retryable failures past MaxDeliver deliveries
)
