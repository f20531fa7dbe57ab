// Package chaos holds alertdesk's fault-injection suite. Its tests build the
// alertdesk binary and a real nats-server binary, run several `alertdesk run`
// worker processes against the TOPdesk simulator, publish thousands of alert
// events while killing workers, restarting NATS or cluster nodes (among them
// the leaders of the input stream and of the state bucket), or breaking
// TOPdesk (up to a simulated week-long outage), and then check TOPdesk's
// final state and the dead-letter stream against the state the events call
// for.
//
// By default (and under -short) the suite runs the worker-kill, NATS-restart
// and TOPdesk-outage scenarios at small scale; -chaos.full runs every
// scenario at full scale (`make chaos`).
package chaos
