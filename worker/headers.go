package worker

// Headers that a dead-lettered message carries besides the original ones
// (PRODUCT.md, "Failures and the dead-letter stream").
const (
	HeaderOriginalSubject = "Alertdesk-Original-Subject"
	HeaderOriginalSeq     = "Alertdesk-Original-Seq"
	HeaderError           = "Alertdesk-Error"
	HeaderErrorClass      = "Alertdesk-Error-Class"
	HeaderDeliveries      = "Alertdesk-Deliveries"
	HeaderFailedAt        = "Alertdesk-Failed-At"
	HeaderAlertKey        = "Alertdesk-Alert-Key"
	// HeaderOriginalTime is the JetStream publish time (RFC 3339) of the
	// message as first published. Dead-lettering sets it and a replay keeps
	// it, so that a replayed event is ordered by its original time.
	HeaderOriginalTime = "Alertdesk-Original-Time"
	// HeaderReplayOf marks a message republished from the DLQ; its value is
	// the DLQ stream sequence it was replayed from.
	HeaderReplayOf = "Alertdesk-Replay-Of"
)

// DLQSubjectPrefix is prepended to the original subject of a dead letter.
const DLQSubjectPrefix = "alertdesk.dlq."

// Class says why a message was dead-lettered.
type Class string

// The dead-letter classes.
const (
	ClassInvalid   Class = "invalid"   // not JSON, not an alert, no key
	ClassTemplate  Class = "template"  // the mapping's template failed
	ClassRejected  Class = "rejected"  // TOPdesk answered a 4xx other than 401/403/408/429
	ClassExhausted Class = "exhausted" // retryable failures past MaxDeliver deliveries
)
