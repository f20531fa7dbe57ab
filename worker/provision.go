package worker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/alertdesk/alertdesk/dlq"
	"github.com/alertdesk/alertdesk/timer"
)

// Topology names the JetStream resources alertdesk uses and the settings it
// creates them with when they are missing.
type Topology struct {
	Stream      string   // input stream, e.g. ALERTS
	Subjects    []string // subjects the input stream binds, e.g. alerts.>
	Consumer    string   // durable pull consumer shared by all workers
	DLQStream   string   // dead-letter stream, subjects alertdesk.dlq.>
	StateBucket string   // KV bucket: alert key -> incident state
	Replicas    int      // replicas for everything alertdesk creates

	// StreamMaxAge is the input stream's max age when it is created; 0 =
	// none, which is the safe choice: the stream is a work queue, from
	// which an event is removed when it is settled, never before.
	StreamMaxAge time.Duration
	DLQMaxAge    time.Duration // dead-letter retention; 0 = 30 days
	// Duplicates is the input stream's dedupe window (Nats-Msg-Id); 0 = 1
	// minute. It must not exceed the mapping's lifecycle.reorderWindow, so
	// that an Alertmanager re-fire identical to a notification stored longer
	// ago than that is stored again (PRODUCT.md, "Order of events").
	Duplicates    time.Duration
	AckWait       time.Duration // consumer ack wait; 0 = 30 s
	MaxAckPending int           // consumer cap on unacked messages across all workers; 0 = 4096
	// MaxDeliver is the worker's delivery limit (Options.MaxDeliver): an
	// existing consumer that stops redelivering sooner is a conflict.
	MaxDeliver int
}

func (t *Topology) setDefaults() {
	if t.Replicas <= 0 {
		t.Replicas = 1
	}
	if t.DLQMaxAge <= 0 {
		t.DLQMaxAge = 30 * 24 * time.Hour
	}
	if t.Duplicates <= 0 {
		t.Duplicates = time.Minute
	}
	if t.AckWait <= 0 {
		t.AckWait = 30 * time.Second
	}
	if t.MaxAckPending <= 0 {
		t.MaxAckPending = 4096
	}
}

// dlqDuplicates is the dead-letter stream's dedupe window. It covers a
// message dead-lettered again after its term was lost, which comes back
// only after the consumer's AckWait.
const dlqDuplicates = 10 * time.Minute

// Resources are the provisioned JetStream handles.
type Resources struct {
	JS       jetstream.JetStream
	Topology Topology // as provisioned, defaults filled in
	Stream   jetstream.Stream
	Consumer jetstream.Consumer
	DLQ      jetstream.Stream
	State    jetstream.KeyValue
	// Warnings are settings of existing resources that can lose events or
	// hold timers back; worker.New logs them.
	Warnings []string
	// StateKeyTTL says that the state bucket has per-key TTLs, so that the
	// state of a closed incident expires.
	StateKeyTTL bool
	// Timers keeps the worker's durable timers (resolve delay, flap quiet,
	// maintenance-window end) in their own stream.
	Timers *timer.Scheduler
}

// ConflictError says that a resource an operator created cannot be used as it
// is. alertdesk never rewrites such a resource; the operator must change it.
type ConflictError struct {
	Kind, Name, Problem string
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("%s %q exists with incompatible settings: %s", e.Kind, e.Name, e.Problem)
}

// Provision creates the input stream, the dead-letter stream, the state
// bucket and the durable consumer when they are missing, and checks the
// ones that exist. It never deletes or rewrites existing resources: an
// incompatible one is reported as a *ConflictError.
func Provision(ctx context.Context, js jetstream.JetStream, t Topology) (*Resources, error) {
	t.setDefaults()
	r := Resources{JS: js, Topology: t}
	var err error
	if r.Stream, err = ensureStream(ctx, js, jetstream.StreamConfig{
		Name:        t.Stream,
		Description: "alertdesk: alert events",
		Subjects:    t.Subjects,
		// A work queue keeps each event until it is settled (acked, or
		// terminated after its dead-letter publish) and no longer.
		Retention:  jetstream.WorkQueuePolicy,
		MaxAge:     t.StreamMaxAge,
		Storage:    jetstream.FileStorage,
		Replicas:   t.Replicas,
		Duplicates: t.Duplicates,
	}); err != nil {
		return nil, err
	}
	r.Warnings = append(r.Warnings, retentionRisks(r.Stream.CachedInfo().Config)...)
	if d := r.Stream.CachedInfo().Config.Duplicates; d > t.Duplicates {
		r.Warnings = append(r.Warnings, fmt.Sprintf("stream %s drops a notification identical to one stored up to %s before, longer than %s (lifecycle.reorderWindow, at most a minute): an Alertmanager re-fire in between is lost; shorten it: nats stream edit %s --dupe-window %s",
			t.Stream, d, t.Duplicates, t.Stream, t.Duplicates))
	}
	if r.DLQ, err = ensureStream(ctx, js, jetstream.StreamConfig{
		Name:        t.DLQStream,
		Description: "alertdesk: dead-lettered alert events",
		Subjects:    []string{dlq.SubjectPrefix + ">"},
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      t.DLQMaxAge,
		Storage:     jetstream.FileStorage,
		Replicas:    t.Replicas,
		Duplicates:  dlqDuplicates,
	}); err != nil {
		return nil, err
	}
	if r.State, r.StateKeyTTL, err = ensureBucket(ctx, js, t); err != nil {
		return nil, err
	}
	if !r.StateKeyTTL {
		r.Warnings = append(r.Warnings, fmt.Sprintf("state bucket %s has no per-key TTL (needs NATS server 2.11 or later): the states of closed alert keys, storm entries and closed major calls' entries are never removed", t.StateBucket))
	}
	if r.Consumer, err = ensureConsumer(ctx, js, t); err != nil {
		return nil, err
	}
	if r.Timers, err = timer.New(ctx, js, timer.Options{Replicas: t.Replicas}); err != nil {
		return nil, err
	}
	r.Warnings = append(r.Warnings, r.Timers.Warnings()...)
	return &r, nil
}

// ensureStream returns the named stream, creating it from want when missing.
// An existing stream must capture every subject of want.
func ensureStream(ctx context.Context, js jetstream.JetStream, want jetstream.StreamConfig) (jetstream.Stream, error) {
	s, err := js.Stream(ctx, want.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		s, err = js.CreateStream(ctx, want)
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			// Another worker created it between our lookup and create.
			s, err = js.Stream(ctx, want.Name)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", want.Name, err)
	}
	if err := checkStream(s.CachedInfo().Config, want.Subjects); err != nil {
		return nil, err
	}
	return s, nil
}

// retentionRisks names the settings of the input stream that can remove an
// event before it was settled, e.g. during a long TOPdesk outage: a max
// age, or a message, byte or per-subject limit that discards old messages.
func retentionRisks(cfg jetstream.StreamConfig) []string {
	var risks []string
	if cfg.MaxAge > 0 {
		risks = append(risks, fmt.Sprintf("stream %s has max age %s: events not settled by then (a TOPdesk outage that long) are removed unprocessed; set it to 0", cfg.Name, cfg.MaxAge))
	}
	if cfg.Discard == jetstream.DiscardOld && (cfg.MaxMsgs > 0 || cfg.MaxBytes > 0 || cfg.MaxMsgsPerSubject > 0) {
		risks = append(risks, fmt.Sprintf("stream %s discards old messages at its limits (max msgs %d, max bytes %d, max per subject %d): unsettled events can be removed; use discard new or no limits",
			cfg.Name, cfg.MaxMsgs, cfg.MaxBytes, cfg.MaxMsgsPerSubject))
	}
	if cfg.Retention == jetstream.LimitsPolicy && cfg.MaxAge == 0 && cfg.MaxMsgs <= 0 && cfg.MaxBytes <= 0 {
		risks = append(risks, fmt.Sprintf("stream %s keeps settled events for ever (limits retention without limits); a work-queue stream removes them once settled", cfg.Name))
	}
	return risks
}

// checkStream returns a *ConflictError unless the existing stream have
// captures every subject of want.
func checkStream(have jetstream.StreamConfig, want []string) error {
	for _, subj := range want {
		if !slices.ContainsFunc(have.Subjects, func(h string) bool { return subjectCovers(h, subj) }) {
			return &ConflictError{"stream", have.Name, fmt.Sprintf(
				"its subjects %v do not include %q", have.Subjects, subj)}
		}
	}
	return nil
}

// stateMarkerTTL is how long the state bucket keeps the marker of a key
// whose per-key TTL expired.
const stateMarkerTTL = time.Minute

// ensureBucket returns the state bucket, creating it when missing, with
// per-key TTLs (LimitMarkerTTL, NATS server 2.11 or later): the state of a
// closed incident expires. An existing bucket without them is updated to
// have them. keyTTL says whether the bucket has them (not on an older
// server).
func ensureBucket(ctx context.Context, js jetstream.JetStream, t Topology) (kv jetstream.KeyValue, keyTTL bool, err error) {
	kv, err = js.KeyValue(ctx, t.StateBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		cfg := jetstream.KeyValueConfig{
			Bucket:         t.StateBucket,
			Description:    "alertdesk: alert key -> TOPdesk incident state",
			History:        1,
			Storage:        jetstream.FileStorage,
			Replicas:       t.Replicas,
			LimitMarkerTTL: stateMarkerTTL,
		}
		kv, err = js.CreateKeyValue(ctx, cfg)
		if errors.Is(err, jetstream.ErrLimitMarkerTTLNotSupported) {
			cfg.LimitMarkerTTL = 0
			kv, err = js.CreateKeyValue(ctx, cfg)
		}
		if errors.Is(err, jetstream.ErrBucketExists) {
			kv, err = js.KeyValue(ctx, t.StateBucket)
		}
	}
	if err != nil {
		return nil, false, fmt.Errorf("state bucket %s: %w", t.StateBucket, err)
	}
	return kv, enableKeyTTL(ctx, js, kv), nil
}

// enableKeyTTL gives the bucket's stream per-message TTLs and delete
// markers if it lacks them, and reports whether it has them. A server that
// cannot (before 2.11) keeps every state for ever, as before.
func enableKeyTTL(ctx context.Context, js jetstream.JetStream, kv jetstream.KeyValue) bool {
	s, err := js.Stream(ctx, "KV_"+kv.Bucket())
	if err != nil {
		return false
	}
	cfg := s.CachedInfo().Config
	if cfg.AllowMsgTTL && cfg.SubjectDeleteMarkerTTL > 0 {
		return true
	}
	cfg.AllowMsgTTL, cfg.SubjectDeleteMarkerTTL = true, stateMarkerTTL
	_, err = js.UpdateStream(ctx, cfg)
	return err == nil
}

func ensureConsumer(ctx context.Context, js jetstream.JetStream, t Topology) (jetstream.Consumer, error) {
	c, err := js.Consumer(ctx, t.Stream, t.Consumer)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		c, err = js.CreateConsumer(ctx, t.Stream, jetstream.ConsumerConfig{
			Durable:     t.Consumer,
			Description: "alertdesk workers",
			AckPolicy:   jetstream.AckExplicitPolicy,
			AckWait:     t.AckWait,
			// Deliveries are counted and bounded by the worker (MAX_DELIVER), so
			// that an outage can keep a message alive past that count.
			MaxDeliver:    -1,
			MaxAckPending: t.MaxAckPending,
			DeliverPolicy: jetstream.DeliverAllPolicy,
			Replicas:      t.Replicas,
		})
		if errors.Is(err, jetstream.ErrConsumerExists) {
			c, err = js.Consumer(ctx, t.Stream, t.Consumer)
		}
	}
	if errors.Is(err, jetstream.ErrNotPullConsumer) {
		return nil, pushConsumerConflict(t.Consumer)
	}
	if err != nil {
		return nil, fmt.Errorf("consumer %s on stream %s: %w", t.Consumer, t.Stream, err)
	}
	if err := checkConsumer(t.Consumer, c.CachedInfo().Config, t.MaxDeliver); err != nil {
		return nil, err
	}
	return c, nil
}

func pushConsumerConflict(name string) *ConflictError {
	return &ConflictError{"consumer", name, "it is a push consumer; alertdesk needs a pull consumer"}
}

// checkConsumer returns a *ConflictError unless the existing consumer's
// settings suit alertdesk: explicit acks and an ack wait of at least 2s.
func checkConsumer(name string, cfg jetstream.ConsumerConfig, maxDeliver int) error {
	switch {
	case cfg.AckPolicy != jetstream.AckExplicitPolicy:
		return &ConflictError{"consumer", name, fmt.Sprintf("ack policy is %s; alertdesk needs explicit acks", cfg.AckPolicy)}
	case cfg.AckWait < 2*time.Second:
		return &ConflictError{"consumer", name, fmt.Sprintf("ack wait %s is too short (at least 2s)", cfg.AckWait)}
	case cfg.MaxDeliver > 0 && cfg.MaxDeliver <= maxDeliver:
		return &ConflictError{"consumer", name, fmt.Sprintf(
			"max deliver %d would stop redelivery before alertdesk dead-letters an event after %d deliveries; "+
				"set it to -1 (alertdesk counts deliveries itself)", cfg.MaxDeliver, maxDeliver)}
	}
	return nil
}

// OverlapError says that a missing stream cannot be created because another
// stream already binds subjects that overlap its own.
type OverlapError struct {
	Stream, Other, Subject string
}

// Error names both streams and the subject.
func (e *OverlapError) Error() string {
	return fmt.Sprintf("stream %q cannot be created: stream %q already binds subjects overlapping %q", e.Stream, e.Other, e.Subject)
}

// Resource names one JetStream resource of a Topology.
type Resource string

// The resources Provision creates and CheckTopology inspects.
const (
	ResourceStream   Resource = "input stream"
	ResourceDLQ      Resource = "dead-letter stream"
	ResourceBucket   Resource = "state bucket"
	ResourceConsumer Resource = "consumer"
	ResourceTimers   Resource = "timer stream"
)

// ResourceStatus is what CheckTopology found for one resource.
type ResourceStatus struct {
	Resource Resource
	Name     string
	// Exists is false when the resource is missing; Provision creates it.
	Exists bool
	// Detail describes an existing resource, e.g. the subjects it binds.
	Detail string
	// Err is nil when the resource is usable as it is, or missing and
	// creatable. It is a *ConflictError when the resource exists with
	// settings Provision rejects, and an *OverlapError when it is missing
	// and creating it would fail because another stream already binds its
	// subjects; any other error means the lookup itself failed.
	Err error
}

// CheckTopology inspects the resources of t without creating or changing
// anything, and reports one ResourceStatus per resource, in the order
// Provision handles them: input stream, dead-letter stream, state bucket,
// consumer, timer stream. It applies the same compatibility checks as Provision.
func CheckTopology(ctx context.Context, js jetstream.JetStream, t Topology) []ResourceStatus {
	t.setDefaults()
	in := checkStreamResource(ctx, js, ResourceStream, t.Stream, t.Subjects)
	out := []ResourceStatus{
		in,
		checkStreamResource(ctx, js, ResourceDLQ, t.DLQStream, []string{dlq.SubjectPrefix + ">"}),
	}

	bucket := ResourceStatus{Resource: ResourceBucket, Name: t.StateBucket}
	kv, err := js.KeyValue(ctx, t.StateBucket)
	switch {
	case errors.Is(err, jetstream.ErrBucketNotFound):
	case err != nil:
		bucket.Err = fmt.Errorf("state bucket %s: %w", t.StateBucket, err)
	default:
		bucket.Exists = true
		if st, err := kv.Status(ctx); err == nil {
			bucket.Detail = fmt.Sprintf("%d keys", st.Values())
		}
	}
	out = append(out, bucket)

	cons := ResourceStatus{Resource: ResourceConsumer, Name: t.Consumer}
	if in.Exists {
		c, err := js.Consumer(ctx, t.Stream, t.Consumer)
		switch {
		case errors.Is(err, jetstream.ErrConsumerNotFound):
		case errors.Is(err, jetstream.ErrNotPullConsumer):
			cons.Exists, cons.Err = true, pushConsumerConflict(t.Consumer)
		case err != nil:
			cons.Err = fmt.Errorf("consumer %s on stream %s: %w", t.Consumer, t.Stream, err)
		default:
			info := c.CachedInfo()
			cons.Exists, cons.Err = true, checkConsumer(t.Consumer, info.Config, t.MaxDeliver)
			cons.Detail = fmt.Sprintf("%d pending, %d unacked", info.NumPending, info.NumAckPending)
		}
	}
	out = append(out, cons)

	timers := ResourceStatus{Resource: ResourceTimers, Name: timer.DefaultStream}
	var mode timer.Mode
	if timers.Exists, mode, timers.Err = timer.Check(ctx, js, timer.DefaultStream); timers.Exists {
		timers.Detail = "timers fire by " + mode.String()
	}
	return append(out, timers)
}

// checkStreamResource inspects one stream: an existing one must capture
// subjects; a missing one must not collide with another stream's subjects.
func checkStreamResource(ctx context.Context, js jetstream.JetStream, r Resource, name string, subjects []string) ResourceStatus {
	st := ResourceStatus{Resource: r, Name: name}
	s, err := js.Stream(ctx, name)
	if err == nil {
		cfg := s.CachedInfo().Config
		st.Exists, st.Err = true, checkStream(cfg, subjects)
		st.Detail = "subjects " + strings.Join(cfg.Subjects, ", ")
		return st
	}
	if !errors.Is(err, jetstream.ErrStreamNotFound) {
		st.Err = fmt.Errorf("stream %s: %w", name, err)
		return st
	}
	for _, subj := range subjects {
		other, err := js.StreamNameBySubject(ctx, subj)
		switch {
		case errors.Is(err, jetstream.ErrStreamNotFound):
		case err != nil:
			st.Err = fmt.Errorf("stream %s: look up streams binding %s: %w", name, subj, err)
			return st
		default:
			st.Err = &OverlapError{Stream: name, Other: other, Subject: subj}
			return st
		}
	}
	return st
}

// subjectCovers reports whether the subject filter have matches every
// subject that the filter want matches (want ⊆ have).
func subjectCovers(have, want string) bool {
	h, w := strings.Split(have, "."), strings.Split(want, ".")
	for i, ht := range h {
		if ht == ">" {
			return i < len(w)
		}
		if i >= len(w) {
			return false
		}
		switch wt := w[i]; {
		case ht == "*":
			if wt == ">" {
				return false
			}
		case ht != wt:
			return false
		}
	}
	return len(h) == len(w)
}
