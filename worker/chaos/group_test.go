package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/alertdesk/alertdesk/mapping"
)

// groups is how many groups the grouping scenario spreads its keys over.
const groups = 5

// groupOf is the group label of key.
func groupOf(key string) string {
	h := fnv.New32a()
	h.Write([]byte(key)) // hash.Hash.Write never returns an error
	return fmt.Sprintf("g%d", h.Sum32()%groups)
}

// groupKey is the incident key of group g under `group: {by: [grp]}`.
func groupKey(g string) string { return mapping.GroupPrefix + `grp="` + g + `"` }

// TestChaosGrouping is the kill -9 scenario with grouping on: the keys of
// the load are spread over five groups, so members of one group race each
// other on every worker while workers are SIGKILLed. Verdict: per group at
// most one incident (0 duplicates), open exactly when a member's newest
// event fires, and the group's state holds every member with its newest
// event (0 lost members).
func TestChaosGrouping(t *testing.T) {
	sc, timeout := smallScale, 120*time.Second
	if *fullFlag {
		sc, timeout = fullScale, 5*time.Minute
	}
	seed := *seedFlag
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -chaos.seed=%d)", seed, seed)
	p := generate(seed, sc)
	labelGroups(t, p)
	file := filepath.Join(t.TempDir(), "mapping.yaml")
	if err := os.WriteFile(file, []byte("group: {by: [grp]}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, 3, false, []string{"ALERTDESK_MAPPING_FILE=" + file})

	start := time.Now()
	stop, stopChaos := context.WithCancel(t.Context())
	defer stopChaos()
	chaosDone := make(chan error, 1)
	var desc string
	go func() {
		var err error
		desc, err = killWorkers(stop, e, rand.New(rand.NewPCG(seed, 1)))
		chaosDone <- err
	}()
	_, pubErr := publish(t.Context(), e.js, p, sc.publish)
	stopChaos()
	if err := <-chaosDone; err != nil {
		t.Fatalf("chaos: %v", err)
	}
	if pubErr != nil {
		t.Fatalf("publish: %v", pubErr)
	}
	e.waitDone(timeout)
	dups, lost, wrong, problems := e.checkGroups(p)
	line := fmt.Sprintf("%-26s %7d %5d groups %d: duplicates %d, lost members %d, wrong %d, wall %s, %s, %s",
		"1-kill-workers-grouped", len(p.pubs), len(p.newest), groups, dups, lost, wrong,
		time.Since(start).Round(100*time.Millisecond), desc, e.topdeskStats())
	t.Logf("summary: %s", line)
	fmt.Printf("chaos: %s\n", line)
	if dups+lost+wrong > 0 {
		t.Errorf("grouping does not match the events:\n%s", strings.Join(problems, "\n"))
	}
}

// labelGroups gives every event of p the label grp with its key's group.
func labelGroups(t *testing.T, p *plan) {
	for i, pub := range p.pubs {
		if p.poison[string(pub.data)] {
			continue
		}
		var ev map[string]any
		if err := json.Unmarshal(pub.data, &ev); err != nil {
			t.Fatal(err)
		}
		ev["labels"] = map[string]string{"grp": groupOf(ev["key"].(string))}
		b, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		p.pubs[i].data = b
	}
}

// checkGroups compares the group incidents and the groups' states with
// the newest event of every key.
func (e *env) checkGroups(p *plan) (dups, lost, wrong int, problems []string) {
	e.t.Helper()
	problem := func(format string, args ...any) {
		if len(problems) < 20 {
			problems = append(problems, fmt.Sprintf(format, args...))
		}
	}
	ctx, cancel := context.WithTimeout(e.t.Context(), 30*time.Second)
	defer cancel()
	kv, err := e.js.KeyValue(ctx, "alertdesk_incidents")
	if err != nil {
		e.t.Fatal(err)
	}
	members := map[string][]string{}
	for key := range p.newest {
		members[groupOf(key)] = append(members[groupOf(key)], key)
	}
	byExt := map[string]int{}
	open := map[string]int{}
	for _, inc := range e.sim.Incidents() {
		byExt[inc.ExternalNumber]++
		if !inc.Closed {
			open[inc.ExternalNumber]++
		}
	}
	for g, keys := range members {
		sort.Strings(keys)
		ext := mapping.ExternalNumber(groupKey(g))
		firing := 0
		var st struct {
			Members map[string]struct {
				Status string    `json:"status"`
				At     time.Time `json:"at"`
			} `json:"members"`
		}
		entry, err := kv.Get(ctx, ext)
		switch {
		case err == nil:
			if err := json.Unmarshal(entry.Value(), &st); err != nil {
				e.t.Fatalf("state of group %s: %v", g, err)
			}
		case !errors.Is(err, jetstream.ErrKeyNotFound):
			e.t.Fatalf("state of group %s: %v", g, err)
		}
		for _, key := range keys {
			want := p.newest[key]
			if want.Status == "firing" {
				firing++
			}
			m, ok := st.Members[key]
			if !ok || m.Status != want.Status || !m.At.Equal(want.Timestamp) {
				lost++
				problem("group %s: member %s is %+v (present %v), its newest event is %s at %s", g, key, m, ok, want.Status, want.Timestamp)
			}
		}
		if byExt[ext] > 1 || open[ext] > 1 {
			dups++
			problem("group %s: %d incidents, %d open; want at most one", g, byExt[ext], open[ext])
		}
		if (firing > 0) != (open[ext] == 1) {
			wrong++
			problem("group %s: %d members fire, %d incidents open", g, firing, open[ext])
		}
		delete(byExt, ext)
	}
	for ext, n := range byExt {
		dups += n
		problem("%d incidents with externalNumber %s belong to no group", n, ext)
	}
	return dups, lost, wrong, problems
}
