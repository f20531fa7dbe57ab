package chaos

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

var (
	fullFlag    = flag.Bool("chaos.full", false, "run every scenario at full scale (make chaos)")
	summaryFlag = flag.String("chaos.summary", "", "write the summary table of the scenarios to this file")
)

// binaries are the executables the scenarios run.
type binaries struct {
	alertdesk, natsServer string
}

// binDir is where TestMain has the binaries built; it is set once before
// any test runs.
var binDir string

// buildBinaries builds alertdesk and nats-server once per test binary run.
var buildBinaries = sync.OnceValues(func() (binaries, error) {
	b := binaries{
		alertdesk:  filepath.Join(binDir, "alertdesk"),
		natsServer: filepath.Join(binDir, "nats-server"),
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		return b, fmt.Errorf("module root: %w", err)
	}
	for _, target := range []struct{ out, pkg string }{
		{b.alertdesk, "./cmd/alertdesk"},
		{b.natsServer, "github.com/nats-io/nats-server/v2"},
	} {
		cmd := exec.Command("go", "build", "-o", target.out, target.pkg)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			return b, fmt.Errorf("go build %s: %w\n%s", target.pkg, err, out)
		}
	}
	return b, nil
})

// needBinaries returns the built binaries or fails the test.
func needBinaries(t *testing.T) binaries {
	t.Helper()
	b, err := buildBinaries()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "alertdesk-chaos-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos: temp dir for binaries:", err)
		os.Exit(1)
	}
	binDir = dir
	if *summaryFlag != "" {
		if err := os.WriteFile(*summaryFlag, []byte(summaryHeader()+"\n"), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "chaos: summary file:", err)
			os.Exit(1)
		}
	}
	code := m.Run()
	if err := os.RemoveAll(dir); err != nil {
		fmt.Fprintln(os.Stderr, "chaos: remove binaries:", err)
	}
	os.Exit(code)
}
