package timer_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/alertdesk/alertdesk/internal/wait"
	"github.com/alertdesk/alertdesk/timer"
	"github.com/alertdesk/alertdesk/worker/workertest"
)

// modes runs test once per mode: with message schedules (the embedded
// server supports them) and with delayed redelivery forced.
func modes(t *testing.T, test func(t *testing.T, o timer.Options)) {
	for _, tc := range []struct {
		name string
		o    timer.Options
	}{
		{"schedules", timer.Options{}},
		{"redelivery", timer.Options{Redelivery: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			test(t, tc.o)
		})
	}
}

// start starts a JetStream server and a Scheduler on it.
func start(t *testing.T, o timer.Options) (*timer.Scheduler, jetstream.JetStream) {
	t.Helper()
	_, js := workertest.Connect(t, workertest.StartJetStream(t))
	return newScheduler(t, js, o), js
}

func newScheduler(t *testing.T, js jetstream.JetStream, o timer.Options) *timer.Scheduler {
	t.Helper()
	s, err := timer.New(t.Context(), js, o)
	if err != nil {
		t.Fatalf("timer.New: %v", err)
	}
	return s
}

// delivery is one handed-over timer and when it arrived.
type delivery struct {
	timer.Fired
	got       time.Time
	delivered uint64
}

// run runs s.Run until the test ends (or stop is called) and passes every
// fired timer to the returned channel; ack decides whether it is acked.
func run(t *testing.T, s *timer.Scheduler, ack bool) (<-chan delivery, func()) {
	t.Helper()
	ch := make(chan delivery, 16)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- s.Run(ctx, func(_ context.Context, f timer.Fired) {
			d := delivery{Fired: f, got: time.Now()}
			if md, err := f.Msg.Metadata(); err == nil {
				d.delivered = md.NumDelivered
			}
			if ack {
				if err := f.Msg.DoubleAck(ctx); err != nil {
					t.Errorf("ack %s %s: %v", f.Kind, f.Key, err)
				}
			}
			ch <- d
		})
	}()
	stop := func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
	t.Cleanup(func() {
		if ctx.Err() == nil {
			stop()
		}
	})
	return ch, stop
}

func next(t *testing.T, ch <-chan delivery, within time.Duration) delivery {
	t.Helper()
	select {
	case d := <-ch:
		return d
	case <-time.After(within):
		t.Fatalf("no timer fired within %s", within)
		return delivery{}
	}
}

// onTime checks that d is the timer with body set for at, and that it
// fired at that time: not before, and not more than 5s after.
func onTime(t *testing.T, d delivery, body string, at time.Time) {
	t.Helper()
	if string(d.Body) != body || !d.At.Equal(at) {
		t.Errorf("fired %q set for %s, want %q set for %s", d.Body, d.At.Format(time.StampMilli), body, at.Format(time.StampMilli))
	}
	if d.got.Before(at) {
		t.Errorf("fired at %s, %s before its time", d.got.Format(time.StampMilli), at.Sub(d.got))
	}
	if late := d.got.Sub(at); late > 5*time.Second {
		t.Errorf("fired %s late", late)
	}
}

func set(t *testing.T, s *timer.Scheduler, kind, key string, at time.Time, body string) {
	t.Helper()
	if err := s.Set(t.Context(), kind, key, at, []byte(body)); err != nil {
		t.Fatalf("Set(%s, %s): %v", kind, key, err)
	}
}

// expectOnly waits until the sentinel timer fires, set after every timer
// that must not fire and due after them, and fails on any other delivery.
func expectOnly(t *testing.T, ch <-chan delivery, sentinel string) {
	t.Helper()
	for {
		d := next(t, ch, 10*time.Second)
		if d.Key == sentinel {
			return
		}
		t.Errorf("unexpected timer %s %s (body %q) fired", d.Kind, d.Key, d.Body)
	}
}

func TestMode(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		o    timer.Options
		want timer.Mode
	}{
		{timer.Options{Stream: "A"}, timer.ModeSchedules},
		{timer.Options{Stream: "B", Consumer: "b", Redelivery: true}, timer.ModeRedelivery},
	} {
		s, _ := start(t, tc.o)
		got, why := s.Mode()
		if got != tc.want {
			t.Errorf("stream %s: mode %s (%s), want %s", tc.o.Stream, got, why, tc.want)
		}
	}
}

// TestSchedulesUnavailable: a timer stream without AllowMsgSchedules (as a
// server before 2.12 creates it) makes New fall back to redelivery.
func TestSchedulesUnavailable(t *testing.T) {
	t.Parallel()
	_, js := workertest.Connect(t, workertest.StartJetStream(t))
	if _, err := js.CreateStream(t.Context(), jetstream.StreamConfig{
		Name: "OLD", Subjects: []string{timer.SubjectPrefix + ">"}, AllowRollup: true,
		Retention: jetstream.WorkQueuePolicy,
	}); err != nil {
		t.Fatal(err)
	}
	s := newScheduler(t, js, timer.Options{Stream: "OLD"})
	if got, why := s.Mode(); got != timer.ModeRedelivery {
		t.Fatalf("mode %s (%s), want %s", got, why, timer.ModeRedelivery)
	}
	ch, _ := run(t, s, true)
	set(t, s, "resolve", "k", time.Now().Add(200*time.Millisecond), "b")
	if d := next(t, ch, 5*time.Second); d.Key != "k" {
		t.Errorf("fired %s, want k", d.Key)
	}
}

func TestFiresAtItsTime(t *testing.T) {
	t.Parallel()
	modes(t, func(t *testing.T, o timer.Options) {
		s, _ := start(t, o)
		ch, _ := run(t, s, true)
		at := time.Now().Add(1200 * time.Millisecond)
		set(t, s, "resolve", "alertdesk-abc.1", at, "body")
		d := next(t, ch, 10*time.Second)
		onTime(t, d, "body", at)
		if d.Kind != "resolve" || d.Key != "alertdesk-abc.1" {
			t.Errorf("fired %s %s, want resolve alertdesk-abc.1", d.Kind, d.Key)
		}
		if d.delivered < 1 {
			t.Errorf("NumDelivered %d", d.delivered)
		}
	})
}

func TestSetTwiceFiresOnceAtSecondTime(t *testing.T) {
	t.Parallel()
	modes(t, func(t *testing.T, o timer.Options) {
		s, _ := start(t, o)
		ch, _ := run(t, s, true)
		now := time.Now()
		set(t, s, "flap", "k", now.Add(time.Second), "first")
		second := now.Add(2 * time.Second)
		set(t, s, "flap", "k", second, "second")
		if n, err := s.Pending(t.Context()); n != 1 || err != nil {
			t.Errorf("Pending() = %d, %v after setting one timer twice, want 1", n, err)
		}
		d := next(t, ch, 10*time.Second)
		onTime(t, d, "second", second)
		set(t, s, "flap", "sentinel", time.Now().Add(time.Second), "")
		expectOnly(t, ch, "sentinel")
	})
}

// TestSetReplacesFiredUnhandled: a timer that fired while no worker ran
// is replaced by setting it again before anyone handled it.
func TestSetReplacesFiredUnhandled(t *testing.T) {
	t.Parallel()
	modes(t, func(t *testing.T, o timer.Options) {
		s, js := start(t, o)
		set(t, s, "maint", "k", time.Now(), "first")
		waitDue(t, js, "maint", "k")
		set(t, s, "maint", "k", time.Now().Add(time.Second), "second")
		ch, _ := run(t, s, true)
		if d := next(t, ch, 10*time.Second); string(d.Body) != "second" {
			t.Errorf("fired %q, want \"second\"", d.Body)
		}
		set(t, s, "maint", "sentinel", time.Now().Add(time.Second), "")
		expectOnly(t, ch, "sentinel")
	})
}

// waitDue polls until the timer kind/key is stored as due.
func waitDue(t *testing.T, js jetstream.JetStream, kind, key string) {
	t.Helper()
	st, err := js.Stream(t.Context(), "ALERTDESK_TIMERS")
	if err != nil {
		t.Fatal(err)
	}
	subj := timer.SubjectPrefix + "due." + kind + "." + key
	deadline := time.After(10 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if _, err := st.GetLastMsgForSubject(t.Context(), subj); err == nil {
			return
		}
		select {
		case <-deadline:
			t.Fatalf("timer %s %s not due within 10s", kind, key)
		case <-tick.C:
		}
	}
}

// TestCancelNeverFires cancels a pending timer and one that fired while no
// worker ran; neither is delivered.
func TestCancelNeverFires(t *testing.T) {
	t.Parallel()
	modes(t, func(t *testing.T, o timer.Options) {
		s, js := start(t, o)
		set(t, s, "resolve", "fired", time.Now(), "")
		waitDue(t, js, "resolve", "fired")
		set(t, s, "resolve", "pending", time.Now().Add(time.Second), "")
		for _, key := range []string{"fired", "pending", "never-set"} {
			if err := s.Cancel(t.Context(), "resolve", key); err != nil {
				t.Errorf("Cancel(%s): %v", key, err)
			}
		}
		ch, _ := run(t, s, true)
		set(t, s, "resolve", "sentinel", time.Now().Add(2*time.Second), "")
		expectOnly(t, ch, "sentinel")
	})
}

func TestBadNames(t *testing.T) {
	t.Parallel()
	s, _ := start(t, timer.Options{})
	for _, n := range [][2]string{{"", "k"}, {"a.b", "k"}, {"k", ""}, {"k", "a..b"}, {"k", "*"}, {"k", "a.>"}, {"k", "a b"}} {
		if err := s.Set(t.Context(), n[0], n[1], time.Now(), nil); err == nil {
			t.Errorf("Set(%q, %q) = nil, want an error", n[0], n[1])
		}
		if err := s.Cancel(t.Context(), n[0], n[1]); err == nil {
			t.Errorf("Cancel(%q, %q) = nil, want an error", n[0], n[1])
		}
	}
}

// TestSurvivesServerRestart: the timer is set, the NATS server stops, a new
// one starts on the same store, and the timer fires there.
func TestSurvivesServerRestart(t *testing.T) {
	t.Parallel()
	modes(t, func(t *testing.T, o timer.Options) {
		dir := t.TempDir()
		ns := workertest.StartJetStreamIn(t, dir)
		_, js := workertest.Connect(t, ns)
		s := newScheduler(t, js, o)
		at := time.Now().Add(2 * time.Second)
		set(t, s, "resolve", "k", at, "survivor")
		ns.Shutdown()
		ns.WaitForShutdown()

		_, js = workertest.Connect(t, workertest.StartJetStreamIn(t, dir))
		ch, _ := run(t, newScheduler(t, js, o), true)
		d := next(t, ch, 15*time.Second)
		onTime(t, d, "survivor", at)
	})
}

// TestDeliveredTwiceIsVisible: a worker that took a timer and died before
// acking it leaves it to the next, which sees a higher delivery count.
func TestDeliveredTwiceIsVisible(t *testing.T) {
	t.Parallel()
	modes(t, func(t *testing.T, o timer.Options) {
		o.AckWait = 500 * time.Millisecond
		s, _ := start(t, o)
		lost, stop := run(t, s, false)
		set(t, s, "resolve", "k", time.Now().Add(time.Second), "")
		first := next(t, lost, 10*time.Second)
		stop()

		ch, _ := run(t, s, true)
		again := next(t, ch, 10*time.Second)
		if again.Key != "k" || again.delivered <= first.delivered {
			t.Errorf("second delivery: key %s NumDelivered %d, want k with more than %d", again.Key, again.delivered, first.delivered)
		}
	})
}

// TestFireNow: a timer fired from a plain JetStream handle is delivered at
// once, and several fired before a worker handles them fold into one.
func TestFireNow(t *testing.T) {
	ns := workertest.StartJetStream(t)
	_, js := workertest.Connect(t, ns)
	s, err := timer.New(t.Context(), js, timer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, body := range []string{"first", "second"} {
		if err := timer.FireNow(t.Context(), js, "event", "I-1", []byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := s.Pending(t.Context()); err != nil || n != 1 {
		t.Fatalf("%d timers stored (err %v), want the two folded into 1", n, err)
	}
	got := make(chan string, 2)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- s.Run(ctx, func(_ context.Context, f timer.Fired) {
			got <- f.Kind + " " + f.Key + " " + string(f.Body)
			_ = f.Msg.Ack()
		})
	}()
	defer func() { cancel(); <-done }()
	select {
	case g := <-got:
		if g != "event I-1 second" {
			t.Fatalf("handled %q, want the last one fired", g)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the fired timer was not delivered")
	}
}

// TestRedeliveryManyPendingTimers: in redelivery mode a timer that is not
// yet due stays unacknowledged on the consumer; a thousand of them must
// not stop a timer that is due from firing.
func TestRedeliveryManyPendingTimers(t *testing.T) {
	t.Parallel()
	s, js := start(t, timer.Options{Redelivery: true})
	if w := s.Warnings(); len(w) != 0 {
		t.Errorf("warnings for a consumer New created: %q", w)
	}
	ch, _ := run(t, s, true)
	later := time.Now().Add(time.Hour)
	for i := range 1000 {
		set(t, s, "window", fmt.Sprintf("k%d", i), later, "later")
	}
	wait.For(t, 30*time.Second, "1000 timers waiting on the consumer", func() bool {
		c, err := js.Consumer(t.Context(), timer.DefaultStream, "alertdesk-timers")
		if err != nil {
			return false
		}
		info, err := c.Info(t.Context())
		return err == nil && info.NumAckPending >= 1000
	})
	set(t, s, "resolve", "due-now", time.Now(), "now")
	d := next(t, ch, 10*time.Second)
	if string(d.Body) != "now" {
		t.Fatalf("got %q", d.Body)
	}
}

// TestRedeliveryConsumerWithLimitWarns: an existing timer consumer with an
// ack-pending limit is kept as the operator made it, with a warning in
// redelivery mode.
func TestRedeliveryConsumerWithLimitWarns(t *testing.T) {
	t.Parallel()
	_, js := workertest.Connect(t, workertest.StartJetStream(t))
	newScheduler(t, js, timer.Options{}) // schedules mode: the default limit
	s := newScheduler(t, js, timer.Options{Redelivery: true})
	if w := s.Warnings(); len(w) != 1 || !strings.Contains(w[0], "1000") {
		t.Fatalf("warnings %q, want one about the limit of 1000", w)
	}
	c, err := js.Consumer(t.Context(), timer.DefaultStream, "alertdesk-timers")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.CachedInfo().Config.MaxAckPending; got != 1000 {
		t.Errorf("max ack pending %d, want 1000 as it was", got)
	}
	if w := newScheduler(t, js, timer.Options{}).Warnings(); len(w) != 0 {
		t.Errorf("warnings in schedules mode: %q", w)
	}
}
