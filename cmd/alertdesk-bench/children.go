package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"syscall"
)

// children starts the harness's child processes: the simulator and the
// alertdesk workers from the binary bin, the baseline workers from the
// harness's own.
type children struct {
	bin  string
	nice []string // a nice(1) command line they run through, or none
}

// alertdesk is a command of the alertdesk binary.
func (c children) alertdesk(ctx context.Context, args ...string) *exec.Cmd {
	return c.command(ctx, c.bin, args...)
}

// baseline is a baseline worker: the harness itself, as baseline-worker.
func (c children) baseline(ctx context.Context, args ...string) (*exec.Cmd, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	return c.command(ctx, self, append([]string{"baseline-worker"}, args...)...), nil
}

func (c children) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	if len(c.nice) == 0 {
		return exec.CommandContext(ctx, name, args...)
	}
	return exec.CommandContext(ctx, c.nice[0], slices.Concat(c.nice[1:], []string{name}, args)...)
}

// lowNATS is -nats-low-priority: NATS is on machines of its own in
// production, and here shares two cores with the simulator and the
// workers, where its CPU delays their TOPdesk round trips. It puts this
// process, and with it the embedded NATS server, at the lowest priority
// (nice 19) and starts the children at the normal one (nice 0): the
// server then takes the CPU the simulator and the workers leave.
// Lowering a child's niceness again needs root or CAP_SYS_NICE, which it
// checks, since nice(1) runs the command anyway when it may not.
func lowNATS(c *children) error {
	// A thread's niceness is its own on Linux, and a new thread takes its
	// creator's: every thread of this process is set.
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return err
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if err := syscall.Setpriority(syscall.PRIO_PROCESS, tid, 19); err != nil {
			return fmt.Errorf("nice 19: %w", err)
		}
	}
	c.nice = []string{"nice", "-n", "-19"}
	// nice(1) without a command prints the niceness it runs at.
	out, err := c.command(context.Background(), "nice").CombinedOutput()
	if err != nil || !bytes.Equal(bytes.TrimSpace(out), []byte("0")) {
		return fmt.Errorf("children would not run at nice 0 (needs root or CAP_SYS_NICE): %q %v", bytes.TrimSpace(out), err)
	}
	return nil
}
