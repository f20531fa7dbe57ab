package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/alertdesk/alertdesk/mapping"
	"github.com/alertdesk/alertdesk/topdesk"
	"github.com/alertdesk/alertdesk/topdesk/topdesktest"
	"github.com/alertdesk/alertdesk/worker"
)

// inProcess is a set of workers running as goroutines of this process,
// each with its own NATS connection and TOPdesk client, as separate
// processes would have.
type inProcess struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	regs   []*prometheus.Registry // the alertdesk workers' metrics
	mu     sync.Mutex
	errs   []error
}

// startInProcess starts n workers of impl ("alertdesk", "baseline" or stateBaseline)
// against the server at natsURL and the simulator at simURL. Their logs go
// to logw at warn level.
func startInProcess(ctx context.Context, impl string, n int, natsURL, simURL string, topo worker.Topology,
	concurrency int, logw io.Writer) (*inProcess, error) {
	ctx, cancel := context.WithCancel(ctx)
	f := &inProcess{cancel: cancel}
	for i := range n {
		log := zerolog.New(logw).Level(zerolog.WarnLevel).With().Timestamp().Int("worker", i).Logger()
		var run func() error
		switch impl {
		case "baseline":
			run = func() error { return runBaseline(ctx, natsURL, simURL, concurrency, "", log) }
		case stateBaseline:
			run = func() error { return runBaseline(ctx, natsURL, simURL, concurrency, topo.StateBucket, log) }
		default:
			reg := prometheus.NewRegistry()
			w, nc, err := newInProcessWorker(ctx, natsURL, simURL, topo, concurrency, log, reg)
			if err != nil {
				f.stop()
				return nil, fmt.Errorf("in-process worker %d: %w", i, err)
			}
			f.regs = append(f.regs, reg)
			run = func() error {
				defer nc.Close()
				return w.Run(ctx)
			}
		}
		f.wg.Go(func() {
			if err := run(); err != nil && !errors.Is(err, context.Canceled) {
				f.mu.Lock()
				f.errs = append(f.errs, err)
				f.mu.Unlock()
			}
		})
	}
	return f, nil
}

// newInProcessWorker wires a worker as `alertdesk run` does with its
// defaults and the given concurrency.
func newInProcessWorker(ctx context.Context, natsURL, simURL string, topo worker.Topology, concurrency int,
	log zerolog.Logger, reg prometheus.Registerer) (*worker.Worker, *nats.Conn, error) {
	nc, err := nats.Connect(natsURL, nats.Name("alertdesk in-process bench worker"))
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	res, err := worker.Provision(ctx, js, topo)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	td, err := topdesk.NewClient(simURL, topdesk.Options{Username: topdesktest.DefaultUsername,
		Password: topdesktest.DefaultPassword, UserAgent: "alertdesk/bench", Concurrency: concurrency + 2})
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	m := mapping.Default()
	resolver := topdesk.NewResolver(td)
	if err := resolver.ResolveAll(ctx, m.Names()); err != nil {
		nc.Close()
		return nil, nil, err
	}
	w, err := worker.New(res, td, resolver, m, worker.Options{Concurrency: concurrency, Logger: log,
		Registerer: reg})
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return w, nc, nil
}

// stop ends the workers, waits for them, and returns what failed.
func (f *inProcess) stop() error {
	f.cancel()
	f.wg.Wait()
	f.mu.Lock()
	defer f.mu.Unlock()
	return errors.Join(f.errs...)
}

// phases sums the alertdesk workers' step latencies (see addPhases).
func (f *inProcess) phases() (map[string]phase, error) {
	out := map[string]phase{}
	for _, reg := range f.regs {
		mfs, err := reg.Gather()
		if err != nil {
			return nil, err
		}
		addPhases(out, mfs)
	}
	return out, nil
}
