package main

// No container engine or cluster runs in CI, so these tests read
// deploy/ and docker-compose.yml and hold them against the code: the
// variables they set exist in the config struct, the metrics the alert rules
// and the dashboard query are exported by a running worker, the ports, paths
// and names agree across files, the mounted mappings load, and the
// configurations they describe pass the worker's own validation.

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"go/build"
	"io"
	"io/fs"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/rs/zerolog"
	"go.yaml.in/yaml/v3"

	"github.com/alertdesk/alertdesk/internal/wait"
	"github.com/alertdesk/alertdesk/mapping"
	"github.com/alertdesk/alertdesk/topdesk"
	"github.com/alertdesk/alertdesk/topdesk/topdesktest"
	"github.com/alertdesk/alertdesk/worker/workertest"
)

// deployRoot is the repository root, seen from this package.
const deployRoot = "../.."

// Files under test, relative to deployRoot.
const (
	composeFile       = "docker-compose.yml"
	dockerfile        = "deploy/Dockerfile"
	dockerignoreFile  = "deploy/Dockerfile.dockerignore"
	natsConfFile      = "deploy/nats/nats.conf"
	kustomizeDir      = "deploy/kubernetes"
	alertRulesFile    = "deploy/prometheus/alerts.yml"
	dashboardFile     = "deploy/grafana/alertdesk.json"
	alertmanagerFile  = "deploy/alertmanager.yml"
	grafanaRangeValue = "5m"
)

// targetLabels are added by Prometheus (or the operator) to every series.
var targetLabels = []string{"job", "instance", "namespace", "pod", "service", "container", "endpoint"}

func repoPath(rel string) string { return filepath.Join(deployRoot, filepath.FromSlash(rel)) }

func readRepoFile(t *testing.T, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(repoPath(rel))
	if err != nil {
		t.Fatalf("read %s: %v", rel, err)
	}
	return b
}

// yamlDocs parses every document of a YAML file.
func yamlDocs(t *testing.T, rel string) []any {
	t.Helper()
	dec := yaml.NewDecoder(bytes.NewReader(readRepoFile(t, rel)))
	var docs []any
	for {
		var doc any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("parse %s: %v", rel, err)
		}
		if doc != nil {
			docs = append(docs, doc)
		}
	}
	if len(docs) == 0 {
		t.Fatalf("%s has no YAML document", rel)
	}
	return docs
}

// dig walks maps (string keys) and lists (int indexes); nil when absent.
func dig(v any, keys ...any) any {
	for _, k := range keys {
		switch k := k.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

// str renders a scalar as YAML would print it ("" for nil).
func str(v any) string {
	if v == nil {
		return ""
	}
	return fmt.Sprint(v)
}

// configVars maps every ALERTDESK_* variable of the config struct to its
// struct field.
func configVars() map[string]reflect.StructField {
	out := map[string]reflect.StructField{}
	typ := reflect.TypeFor[config]()
	for i := range typ.NumField() {
		f := typ.Field(i)
		if tag := f.Tag.Get("envconfig"); tag != "" {
			out[envPrefix+"_"+tag] = f
		}
	}
	return out
}

// configDefault is the default of an ALERTDESK_* variable.
func configDefault(t *testing.T, name string) string {
	t.Helper()
	f, ok := configVars()[name]
	if !ok {
		t.Fatalf("%s is not in the config struct", name)
	}
	return f.Tag.Get("default")
}

// simVars are the ALERTDESK_SIM_* variables that `alertdesk topdesk-sim` reads.
func simVars(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, name := range knownVariables() {
		if strings.HasPrefix(name, envPrefix+"_SIM_") {
			out = append(out, name)
		}
	}
	if len(out) == 0 {
		t.Fatal("found no ALERTDESK_SIM_* variable")
	}
	return out
}

// deployFiles lists every file the tests check, relative to deployRoot.
func deployFiles(t *testing.T) []string {
	t.Helper()
	files := []string{composeFile}
	err := filepath.WalkDir(repoPath("deploy"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(deployRoot, p)
		files = append(files, filepath.ToSlash(rel))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func isYAML(rel string) bool {
	return strings.HasSuffix(rel, ".yml") || strings.HasSuffix(rel, ".yaml")
}

func TestDeployFilesParse(t *testing.T) {
	var yamls int
	for _, rel := range deployFiles(t) {
		t.Run(rel, func(t *testing.T) {
			switch {
			case isYAML(rel):
				yamls++
				yamlDocs(t, rel)
			case strings.HasSuffix(rel, ".json"):
				var v map[string]any
				if err := json.Unmarshal(readRepoFile(t, rel), &v); err != nil {
					t.Fatalf("parse %s: %v", rel, err)
				}
			}
		})
	}
	if yamls < 10 {
		t.Errorf("found %d YAML files under deploy/ and %s, want at least 10", yamls, composeFile)
	}
}

// TestDeployEnvVariables checks every ALERTDESK_* name in deploy/ and
// docker-compose.yml, set or only mentioned in a comment or a description:
// each must be a setting of the config struct or a simulator variable.
func TestDeployEnvVariables(t *testing.T) {
	known := configVars()
	sim := simVars(t)
	nameRe := regexp.MustCompile(`ALERTDESK_[A-Z0-9_]*[A-Z0-9]`)
	seen := map[string]bool{}
	for _, rel := range deployFiles(t) {
		if strings.HasPrefix(rel, "deploy/mappings/") {
			continue // templates, not settings
		}
		for _, name := range nameRe.FindAllString(string(readRepoFile(t, rel)), -1) {
			seen[name] = true
			if _, ok := known[name]; !ok && !slices.Contains(sim, name) {
				t.Errorf("%s names %s, which is neither in the config struct (config.go) nor one of the simulator's %v", rel, name, sim)
			}
		}
	}
	// The variables the manifests set, found structurally.
	var set []string
	for _, svc := range composeServices(t) {
		for name := range composeEnv(t, svc) {
			set = append(set, name)
		}
	}
	for name := range k8sContainerEnv(t, k8sObjects(t)) {
		set = append(set, name)
	}
	if len(set) < 20 {
		t.Fatalf("found only %d variables set in %s and %s; the walk is broken", len(set), composeFile, kustomizeDir)
	}
	for _, name := range set {
		if _, ok := known[name]; !ok && !slices.Contains(sim, name) {
			t.Errorf("variable %s is set but not read by alertdesk", name)
		}
	}
}

// ---- Dockerfile ----

// dockerInstruction is one instruction of a Dockerfile, continuation lines joined.
type dockerInstruction struct {
	cmd, args string
}

func parseDockerfile(t *testing.T) []dockerInstruction {
	t.Helper()
	var out []dockerInstruction
	var cur strings.Builder
	for line := range strings.SplitSeq(string(readRepoFile(t, dockerfile)), "\n") {
		trimmed := strings.TrimSpace(line)
		if cur.Len() == 0 && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if strings.HasSuffix(trimmed, "\\") {
			cur.WriteString(strings.TrimSuffix(trimmed, "\\") + " ")
			continue
		}
		cur.WriteString(trimmed)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, dockerInstruction{strings.ToUpper(cmd), strings.Join(strings.Fields(args), " ")})
		cur.Reset()
	}
	return out
}

// execForm decodes a JSON-array (exec form) argument.
func execForm(t *testing.T, s string) []string {
	t.Helper()
	var out []string
	if err := json.Unmarshal([]byte(s), &out); err != nil {
		t.Fatalf("%q is not an exec-form JSON array: %v", s, err)
	}
	return out
}

func commandNames() []string {
	var out []string
	for _, c := range commands() {
		out = append(out, c.name)
	}
	return out
}

// goMinor is the language version of go.mod, as a golang image tag ("1.26").
func goMinor(t *testing.T) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(readRepoFile(t, "go.mod"))
	if m == nil {
		t.Fatal("go.mod has no go directive")
	}
	return string(m[1])
}

func httpPort(t *testing.T) string {
	t.Helper()
	_, port, err := net.SplitHostPort(configDefault(t, "ALERTDESK_HTTP_ADDR"))
	if err != nil {
		t.Fatal(err)
	}
	return port
}

func TestDeployDockerfile(t *testing.T) {
	ins := parseDockerfile(t)
	get := func(cmd string) []string {
		var out []string
		for _, in := range ins {
			if in.cmd == cmd {
				out = append(out, in.args)
			}
		}
		return out
	}
	froms := get("FROM")
	if len(froms) != 2 {
		t.Fatalf("FROM lines %q: want a build stage and a runtime stage", froms)
	}
	if !strings.Contains(froms[0], "golang:${GO_VERSION}") || !slices.Contains(get("ARG"), "GO_VERSION="+goMinor(t)) {
		t.Errorf("build stage %q with ARG %q: want golang:${GO_VERSION} and GO_VERSION=%s (go.mod)", froms[0], get("ARG"), goMinor(t))
	}
	if !strings.HasPrefix(froms[1], "gcr.io/distroless/static") {
		t.Errorf("runtime stage %q: want distroless static", froms[1])
	}

	var build string
	for _, run := range get("RUN") {
		if strings.Contains(run, "go build") {
			build = run
		}
	}
	for _, want := range []string{"--mount=type=cache,target=/go/pkg/mod", "CGO_ENABLED=0", "-trimpath", `-ldflags "-s -w -X main.version=${VERSION}"`, "-o /out/alertdesk ./cmd/alertdesk"} {
		if !strings.Contains(build, want) {
			t.Errorf("go build step %q lacks %q", build, want)
		}
	}
	_ = version // the variable the -X flag sets must exist in package main

	if !slices.Contains(get("COPY"), "--from=build /out/alertdesk /alertdesk") {
		t.Errorf("COPY lines %q: want the binary copied to /alertdesk", get("COPY"))
	}
	user := get("USER")
	if len(user) != 1 || user[0] != "65532:65532" {
		t.Errorf("USER %q, want 65532:65532 (distroless nonroot, numeric for runAsNonRoot)", user)
	}
	if got := get("EXPOSE"); !slices.Equal(got, []string{httpPort(t)}) {
		t.Errorf("EXPOSE %q, want the port of ALERTDESK_HTTP_ADDR's default, %s", got, httpPort(t))
	}
	if ep := get("ENTRYPOINT"); len(ep) != 1 || !slices.Equal(execForm(t, ep[0]), []string{"/alertdesk"}) {
		t.Errorf("ENTRYPOINT %q, want [\"/alertdesk\"]", ep)
	}
	if cmd := get("CMD"); len(cmd) != 1 || !slices.Equal(execForm(t, cmd[0]), []string{"run"}) {
		t.Errorf("CMD %q, want [\"run\"]", cmd)
	}
	hc := get("HEALTHCHECK")
	if len(hc) != 1 {
		t.Fatalf("HEALTHCHECK %q, want one", hc)
	}
	_, form, ok := strings.Cut(hc[0], " CMD ")
	if argv := execForm(t, strings.TrimSpace(form)); !ok || len(argv) < 2 || argv[0] != "/alertdesk" || !slices.Contains(commandNames(), argv[1]) || argv[1] != "healthcheck" {
		t.Errorf("HEALTHCHECK %q: want CMD [\"/alertdesk\", \"healthcheck\"], a command of the binary", hc[0])
	}
}

// TestDeployDockerignore checks that the build context keeps every package
// the binary is built from, and what they embed.
func TestDeployDockerignore(t *testing.T) {
	var rules []string
	for line := range strings.SplitSeq(string(readRepoFile(t, dockerignoreFile)), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			rules = append(rules, line)
		}
	}
	if len(rules) == 0 || rules[0] != "*" {
		t.Fatalf("%s: want an allow-list that starts with *", dockerignoreFile)
	}
	modLine := regexp.MustCompile(`(?m)^module (\S+)`).FindSubmatch(readRepoFile(t, "go.mod"))
	module := string(modLine[1])
	need := map[string]bool{"go.mod": true, "go.sum": true}
	queue := []string{"cmd/alertdesk"}
	done := map[string]bool{}
	for len(queue) > 0 {
		dir := queue[0]
		queue = queue[1:]
		if done[dir] {
			continue
		}
		done[dir] = true
		pkg, err := build.Default.ImportDir(repoPath(dir), 0)
		if err != nil {
			t.Fatalf("import %s: %v", dir, err)
		}
		top, _, _ := strings.Cut(dir, "/")
		need[top+"/"] = true
		for _, p := range pkg.EmbedPatterns {
			if strings.Contains(p, "testdata") || strings.HasSuffix(p, "_test.go") {
				t.Errorf("package %s embeds %q, which %s leaves out", dir, p, dockerignoreFile)
			}
		}
		for _, imp := range pkg.Imports {
			if rel, ok := strings.CutPrefix(imp, module+"/"); ok {
				queue = append(queue, rel)
			}
		}
	}
	for p := range need {
		if !slices.Contains(rules, "!"+p) {
			t.Errorf("%s does not let %s into the build context; the binary needs it", dockerignoreFile, p)
		}
	}
}

// ---- docker-compose.yml ----

var composeVarRe = regexp.MustCompile(`\$\{([A-Za-z0-9_]+)(?::?-([^}]*))?\}`)

// interpolate resolves ${VAR} and ${VAR:-default} as docker compose does
// with an empty environment.
func interpolate(v any) any {
	switch v := v.(type) {
	case string:
		return composeVarRe.ReplaceAllStringFunc(v, func(m string) string {
			return composeVarRe.FindStringSubmatch(m)[2]
		})
	case map[string]any:
		out := map[string]any{}
		for k, x := range v {
			out[k] = interpolate(x)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = interpolate(x)
		}
		return out
	}
	return v
}

func composeServices(t *testing.T) map[string]map[string]any {
	t.Helper()
	doc := interpolate(yamlDocs(t, composeFile)[0])
	out := map[string]map[string]any{}
	services, _ := dig(doc, "services").(map[string]any)
	for name, s := range services {
		m, ok := s.(map[string]any)
		if !ok {
			t.Fatalf("%s: service %s is not a mapping", composeFile, name)
		}
		out[name] = m
	}
	return out
}

// composeEnv is a service's environment, from a mapping or a list of K=V.
func composeEnv(t *testing.T, svc map[string]any) map[string]string {
	t.Helper()
	out := map[string]string{}
	switch env := svc["environment"].(type) {
	case map[string]any:
		for k, v := range env {
			out[k] = str(v)
		}
	case []any:
		for _, e := range env {
			k, v, _ := strings.Cut(str(e), "=")
			out[k] = v
		}
	case nil:
	default:
		t.Fatalf("%s: environment of type %T", composeFile, env)
	}
	return out
}

func composeCommand(svc map[string]any) []string {
	var out []string
	for _, a := range dig(svc, "command").([]any) {
		out = append(out, str(a))
	}
	return out
}

func composeHealthURL(t *testing.T, name string, svc map[string]any) *url.URL {
	t.Helper()
	test, _ := dig(svc, "healthcheck", "test").([]any)
	for _, a := range test {
		if u, err := url.Parse(str(a)); err == nil && u.Scheme == "http" {
			return u
		}
	}
	t.Fatalf("%s: service %s has no health check URL in %v", composeFile, name, test)
	return nil
}

// publishedContainerPorts are the container ports a service publishes.
func publishedContainerPorts(svc map[string]any) []string {
	var out []string
	for _, p := range dig(svc, "ports").([]any) {
		s := str(p)
		out = append(out, s[strings.LastIndex(s, ":")+1:])
	}
	return out
}

// composeWorkers are the services that run `alertdesk run`.
func composeWorkers(t *testing.T) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for name, svc := range composeServices(t) {
		if cmd, _ := dig(svc, "command").([]any); len(cmd) > 0 && str(cmd[0]) == "run" {
			out[name] = svc
		}
	}
	return out
}

func TestDeployCompose(t *testing.T) {
	services := composeServices(t)
	workers := composeWorkers(t)
	if len(workers) != 3 {
		t.Fatalf("%d worker services, want 3", len(workers))
	}
	nats, sim := services["nats"], services["topdesk-sim"]
	if nats == nil || sim == nil {
		t.Fatalf("services %v: want nats and topdesk-sim", slices.Sorted(maps.Keys(services)))
	}

	// NATS: JetStream on the volume, config from deploy/nats.
	natsOpts, err := server.ProcessConfigFile(repoPath(natsConfFile))
	if err != nil {
		t.Fatalf("%s: %v", natsConfFile, err)
	}
	if !natsOpts.JetStream || natsOpts.StoreDir != "/data" {
		t.Errorf("%s: jetstream %v, store_dir %q; want JetStream on /data", natsConfFile, natsOpts.JetStream, natsOpts.StoreDir)
	}
	natsCmd := strings.Join(composeCommand(nats), " ")
	for _, want := range []string{"--config /etc/nats/nats.conf", "-js", "-sd /data"} {
		if !strings.Contains(natsCmd, want) {
			t.Errorf("nats command %q lacks %q", natsCmd, want)
		}
	}
	natsVolumes := fmt.Sprint(dig(nats, "volumes"))
	if !strings.Contains(natsVolumes, "./"+natsConfFile+":/etc/nats/nats.conf") || !strings.Contains(natsVolumes, "nats-data:/data") {
		t.Errorf("nats volumes %s: want %s at /etc/nats/nats.conf and the named volume nats-data at /data", natsVolumes, natsConfFile)
	}
	if volumes, _ := dig(yamlDocs(t, composeFile)[0], "volumes").(map[string]any); volumes == nil || !hasKey(volumes, "nats-data") {
		t.Errorf("%s does not declare the volume nats-data", composeFile)
	}
	if u := composeHealthURL(t, "nats", nats); u.Port() != strconv.Itoa(natsOpts.HTTPPort) || u.Path != "/healthz" {
		t.Errorf("nats health check %s: want /healthz on http_port %d of %s", u, natsOpts.HTTPPort, natsConfFile)
	}

	// The simulator.
	simCmd := composeCommand(sim)
	if len(simCmd) < 3 || simCmd[0] != "topdesk-sim" || simCmd[1] != "--addr" {
		t.Fatalf("topdesk-sim command %q: want topdesk-sim --addr <host:port>", simCmd)
	}
	simHost, simPort, err := net.SplitHostPort(simCmd[2])
	if err != nil || simHost != "0.0.0.0" {
		t.Errorf("topdesk-sim --addr %q: want 0.0.0.0:<port>, reachable from the other containers", simCmd[2])
	}
	if u := composeHealthURL(t, "topdesk-sim", sim); u.Port() != simPort || u.Path != "/" {
		t.Errorf("topdesk-sim health check %s: want the page / on port %s", u, simPort)
	}
	if !slices.Contains(publishedContainerPorts(sim), simPort) {
		t.Errorf("topdesk-sim does not publish port %s (its page)", simPort)
	}
	simEnv := composeEnv(t, sim)

	var ingest []string
	for name, w := range workers {
		t.Run(name, func(t *testing.T) {
			env := composeEnv(t, w)
			if u, err := url.Parse(env["ALERTDESK_NATS_URL"]); err != nil || u.Hostname() != "nats" || u.Port() != strconv.Itoa(natsOpts.Port) {
				t.Errorf("ALERTDESK_NATS_URL %q: want nats://nats:%d", env["ALERTDESK_NATS_URL"], natsOpts.Port)
			}
			if want := "http://topdesk-sim:" + simPort; env["ALERTDESK_TOPDESK_URL"] != want {
				t.Errorf("ALERTDESK_TOPDESK_URL %q, want %q", env["ALERTDESK_TOPDESK_URL"], want)
			}
			if env["ALERTDESK_TOPDESK_USERNAME"] != simEnv["ALERTDESK_SIM_USERNAME"] || env["ALERTDESK_TOPDESK_PASSWORD"] != simEnv["ALERTDESK_SIM_PASSWORD"] || env["ALERTDESK_TOPDESK_PASSWORD"] == "" {
				t.Errorf("worker credentials (%q, password set %v) differ from the simulator's (%q)",
					env["ALERTDESK_TOPDESK_USERNAME"], env["ALERTDESK_TOPDESK_PASSWORD"] != "", simEnv["ALERTDESK_SIM_USERNAME"])
			}
			if src := composeMappingSource(t, w, env); src != "deploy/mappings/example.yaml" {
				t.Errorf("mapping mounted from %q, want deploy/mappings/example.yaml", src)
			}
			_, port, err := net.SplitHostPort(cmp.Or(env["ALERTDESK_HTTP_ADDR"], configDefault(t, "ALERTDESK_HTTP_ADDR")))
			if err != nil {
				t.Fatal(err)
			}
			if u := composeHealthURL(t, name, w); u.Port() != port || u.Path != "/healthz" {
				t.Errorf("health check %s: want /healthz on port %s", u, port)
			}
			if env["ALERTDESK_INGEST_TOKEN"] != "" {
				ingest = append(ingest, name)
				if !slices.Contains(publishedContainerPorts(w), port) {
					t.Errorf("the ingest worker does not publish its HTTP port %s", port)
				}
			}
			for _, dep := range []string{"nats", "topdesk-sim"} {
				if c := str(dig(w, "depends_on", dep, "condition")); c != "service_healthy" {
					t.Errorf("depends_on %s condition %q, want service_healthy", dep, c)
				}
			}
			grace, err := time.ParseDuration(str(w["stop_grace_period"]))
			if err != nil {
				t.Fatalf("stop_grace_period: %v", err)
			}
			if need := shutdownBudget(t, env["ALERTDESK_SHUTDOWN_TIMEOUT"]); grace <= need {
				t.Errorf("stop_grace_period %s, want more than %s (shutdown timeout + HTTP shutdown + NATS drain)", grace, need)
			}
			if b := str(dig(w, "build", "dockerfile")); b != dockerfile {
				t.Errorf("build dockerfile %q, want %s", b, dockerfile)
			}
		})
	}
	if len(ingest) != 1 {
		t.Errorf("workers with ALERTDESK_INGEST_TOKEN: %v, want exactly one", ingest)
	}
}

func hasKey(m map[string]any, k string) bool {
	_, ok := m[k]
	return ok
}

// composeMappingSource is the host file mounted at ALERTDESK_MAPPING_FILE.
func composeMappingSource(t *testing.T, svc map[string]any, env map[string]string) string {
	t.Helper()
	target := env["ALERTDESK_MAPPING_FILE"]
	for _, v := range dig(svc, "volumes").([]any) {
		parts := strings.Split(str(v), ":")
		if len(parts) >= 2 && parts[1] == target {
			return strings.TrimPrefix(parts[0], "./")
		}
	}
	t.Fatalf("no volume is mounted at ALERTDESK_MAPPING_FILE %q", target)
	return ""
}

// shutdownBudget is how long a worker may take after SIGTERM: the shutdown
// timeout, then up to 5s for the HTTP server, plus 5s for draining NATS.
func shutdownBudget(t *testing.T, shutdownTimeout string) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(cmp.Or(shutdownTimeout, configDefault(t, "ALERTDESK_SHUTDOWN_TIMEOUT")))
	if err != nil {
		t.Fatalf("ALERTDESK_SHUTDOWN_TIMEOUT: %v", err)
	}
	return d + 10*time.Second
}

// ---- Kubernetes ----

// k8sObjects are the objects of the files the kustomization lists, by
// "Kind/name".
func k8sObjects(t *testing.T) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for _, res := range kustomizeResources(t) {
		for _, doc := range yamlDocs(t, kustomizeDir+"/"+res) {
			obj, _ := doc.(map[string]any)
			key := str(obj["kind"]) + "/" + str(dig(obj, "metadata", "name"))
			if obj["apiVersion"] == nil || obj["kind"] == nil || dig(obj, "metadata", "name") == nil {
				t.Fatalf("%s: an object without apiVersion, kind or metadata.name", res)
			}
			if out[key] != nil {
				t.Fatalf("%s: %s defined twice", res, key)
			}
			out[key] = obj
		}
	}
	return out
}

func kustomizeResources(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, r := range dig(yamlDocs(t, kustomizeDir+"/kustomization.yaml")[0], "resources").([]any) {
		out = append(out, str(r))
	}
	return out
}

func k8sContainer(t *testing.T, objs map[string]map[string]any) map[string]any {
	t.Helper()
	c, _ := dig(objs["Deployment/alertdesk"], "spec", "template", "spec", "containers", 0).(map[string]any)
	if c == nil {
		t.Fatal("Deployment/alertdesk has no container")
	}
	return c
}

// k8sContainerEnv is the container's environment: envFrom ConfigMaps, then
// env (values; secret references as "secret:<name>/<key>").
func k8sContainerEnv(t *testing.T, objs map[string]map[string]any) map[string]string {
	t.Helper()
	c := k8sContainer(t, objs)
	out := map[string]string{}
	for _, ef := range c["envFrom"].([]any) {
		name := str(dig(ef, "configMapRef", "name"))
		cm := objs["ConfigMap/"+name]
		if cm == nil {
			t.Fatalf("envFrom names ConfigMap %q, which the kustomization does not define", name)
		}
		for k, v := range dig(cm, "data").(map[string]any) {
			out[k] = str(v)
		}
	}
	for _, e := range c["env"].([]any) {
		name := str(dig(e, "name"))
		if ref := dig(e, "valueFrom", "secretKeyRef"); ref != nil {
			out[name] = "secret:" + str(dig(ref, "name")) + "/" + str(dig(ref, "key"))
			continue
		}
		out[name] = str(dig(e, "value"))
	}
	return out
}

// k8sMounts maps each file the pod sees through a volume to its source
// ("ConfigMap/<name>/<key>" or "Secret/<name>/<key>").
func k8sMounts(t *testing.T, objs map[string]map[string]any) map[string]string {
	t.Helper()
	pod := dig(objs["Deployment/alertdesk"], "spec", "template", "spec")
	volumes := map[string]map[string]any{}
	for _, v := range dig(pod, "volumes").([]any) {
		volumes[str(dig(v, "name"))] = v.(map[string]any)
	}
	out := map[string]string{}
	for _, m := range k8sContainer(t, objs)["volumeMounts"].([]any) {
		vol := volumes[str(dig(m, "name"))]
		if vol == nil {
			t.Fatalf("volumeMount %v names no volume", m)
		}
		if dig(m, "readOnly") != true {
			t.Errorf("volumeMount %s is not readOnly", str(dig(m, "name")))
		}
		var kind, name string
		var items any
		switch {
		case vol["configMap"] != nil:
			kind, name, items = "ConfigMap", str(dig(vol, "configMap", "name")), dig(vol, "configMap", "items")
		case vol["secret"] != nil:
			kind, name, items = "Secret", str(dig(vol, "secret", "secretName")), dig(vol, "secret", "items")
		default:
			t.Fatalf("volume %v is neither a ConfigMap nor a Secret", vol)
		}
		obj := objs[kind+"/"+name]
		if obj == nil {
			t.Fatalf("volume %s names %s/%s, which the kustomization does not define", str(vol["name"]), kind, name)
		}
		keys := map[string]string{} // key -> file name
		if items != nil {
			for _, it := range items.([]any) {
				keys[str(dig(it, "key"))] = str(dig(it, "path"))
			}
		} else {
			for _, field := range []string{"data", "stringData"} {
				if d, ok := obj[field].(map[string]any); ok {
					for k := range d {
						keys[k] = k
					}
				}
			}
		}
		for key, file := range keys {
			if k8sData(obj, key) == nil {
				t.Errorf("volume %s: %s/%s has no key %q", str(vol["name"]), kind, name, key)
			}
			out[path.Join(str(dig(m, "mountPath")), file)] = kind + "/" + name + "/" + key
		}
	}
	return out
}

// k8sData is a ConfigMap's or Secret's value for key, or nil.
func k8sData(obj map[string]any, key string) any {
	if v := dig(obj, "data", key); v != nil {
		return v
	}
	return dig(obj, "stringData", key)
}

func TestDeployKubernetes(t *testing.T) {
	// The kustomization lists files that exist, and every manifest.
	resources := kustomizeResources(t)
	entries, err := os.ReadDir(repoPath(kustomizeDir))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if isYAML(e.Name()) && e.Name() != "kustomization.yaml" && !slices.Contains(resources, e.Name()) {
			t.Errorf("%s/%s is not listed in kustomization.yaml", kustomizeDir, e.Name())
		}
	}
	objs := k8sObjects(t) // fails on a listed file that does not exist
	for _, want := range []string{"Deployment/alertdesk", "Service/alertdesk", "ConfigMap/alertdesk-env", "ConfigMap/alertdesk-mapping",
		"Secret/alertdesk", "PodDisruptionBudget/alertdesk", "ServiceMonitor/alertdesk", "ScaledObject/alertdesk"} {
		if objs[want] == nil {
			t.Errorf("the kustomization defines no %s", want)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	dep := objs["Deployment/alertdesk"]
	pod := dig(dep, "spec", "template", "spec")
	c := k8sContainer(t, objs)
	podLabels := dig(dep, "spec", "template", "metadata", "labels").(map[string]any)
	selects := func(what string, sel any) {
		t.Helper()
		m, _ := sel.(map[string]any)
		if len(m) == 0 {
			t.Errorf("%s has an empty selector", what)
		}
		for k, v := range m {
			if podLabels[k] != v {
				t.Errorf("%s selects %s=%v, which the pods do not carry (%v)", what, k, v, podLabels)
			}
		}
	}

	if r := dig(dep, "spec", "replicas"); r != 3 {
		t.Errorf("replicas %v, want 3", r)
	}
	selects("Deployment", dig(dep, "spec", "selector", "matchLabels"))
	selects("PodDisruptionBudget", dig(objs["PodDisruptionBudget/alertdesk"], "spec", "selector", "matchLabels"))
	selects("Service", dig(objs["Service/alertdesk"], "spec", "selector"))

	// Ports and probes.
	port := httpPort(t)
	if p := dig(c, "ports", 0); str(dig(p, "name")) != "http" || str(dig(p, "containerPort")) != port {
		t.Errorf("container port %v, want http: %s", p, port)
	}
	for probe, want := range map[string]string{"readinessProbe": "/readyz", "livenessProbe": "/healthz"} {
		if p, pt := str(dig(c, probe, "httpGet", "path")), str(dig(c, probe, "httpGet", "port")); p != want || (pt != "http" && pt != port) {
			t.Errorf("%s GET %s on port %s, want %s on http", probe, p, pt, want)
		}
	}
	svcPort := dig(objs["Service/alertdesk"], "spec", "ports", 0)
	if str(dig(svcPort, "name")) != "http" || str(dig(svcPort, "port")) != port || str(dig(svcPort, "targetPort")) != "http" {
		t.Errorf("Service port %v, want http %s -> http", svcPort, port)
	}
	sm := objs["ServiceMonitor/alertdesk"]
	if ep := dig(sm, "spec", "endpoints", 0); str(dig(ep, "port")) != "http" || str(dig(ep, "path")) != "/metrics" {
		t.Errorf("ServiceMonitor endpoint %v, want port http, path /metrics", ep)
	}
	for k, v := range dig(sm, "spec", "selector", "matchLabels").(map[string]any) {
		if dig(objs["Service/alertdesk"], "metadata", "labels", k) != v {
			t.Errorf("ServiceMonitor selects %s=%v, which the Service does not carry", k, v)
		}
	}

	// Resources and security.
	for _, r := range []string{"requests.cpu", "requests.memory", "limits.memory"} {
		a, b, _ := strings.Cut(r, ".")
		if dig(c, "resources", a, b) == nil {
			t.Errorf("container has no resources.%s", r)
		}
	}
	if dig(pod, "securityContext", "runAsNonRoot") != true || dig(c, "securityContext", "readOnlyRootFilesystem") != true ||
		dig(c, "securityContext", "allowPrivilegeEscalation") != false || fmt.Sprint(dig(c, "securityContext", "capabilities", "drop")) != "[ALL]" {
		t.Errorf("securityContext pod %v, container %v: want non-root, read-only root, no privilege escalation, all capabilities dropped",
			dig(pod, "securityContext"), dig(c, "securityContext"))
	}
	if uid := str(dig(pod, "securityContext", "runAsUser")); uid != "65532" {
		t.Errorf("runAsUser %s, want 65532, the image's USER", uid)
	}

	// Graceful termination outlasts the worker's shutdown.
	env := k8sContainerEnv(t, objs)
	grace := time.Duration(dig(pod, "terminationGracePeriodSeconds").(int)) * time.Second
	preStop := time.Duration(0)
	if s, ok := dig(c, "lifecycle", "preStop", "sleep", "seconds").(int); ok {
		preStop = time.Duration(s) * time.Second
	}
	if need := preStop + shutdownBudget(t, env["ALERTDESK_SHUTDOWN_TIMEOUT"]); grace <= need {
		t.Errorf("terminationGracePeriodSeconds %s, want more than %s (preStop + shutdown timeout + HTTP shutdown + NATS drain)", grace, need)
	}

	// Configuration: the password is a mounted file, never an env value; the
	// files the variables name are mounted from keys that exist.
	mounts := k8sMounts(t, objs)
	if _, ok := env["ALERTDESK_TOPDESK_PASSWORD"]; ok {
		t.Error("ALERTDESK_TOPDESK_PASSWORD is set; the password must come from ALERTDESK_TOPDESK_PASSWORD_FILE")
	}
	for name, want := range map[string]string{
		"ALERTDESK_TOPDESK_PASSWORD_FILE": "Secret/alertdesk/topdesk-password",
		"ALERTDESK_MAPPING_FILE":          "ConfigMap/alertdesk-mapping/mapping.yaml",
	} {
		if got := mounts[env[name]]; got != want {
			t.Errorf("%s=%q is mounted from %q, want %s", name, env[name], got, want)
		}
	}
	for name, v := range env {
		if ref, ok := strings.CutPrefix(v, "secret:"); ok {
			secret, key, _ := strings.Cut(ref, "/")
			if obj := objs["Secret/"+secret]; obj == nil || k8sData(obj, key) == nil {
				t.Errorf("%s refers to Secret %s key %s, which the kustomization does not define", name, secret, key)
			}
		}
	}
	for key, v := range dig(objs["Secret/alertdesk"], "stringData").(map[string]any) {
		if !strings.HasPrefix(str(v), "REPLACE-ME") {
			t.Errorf("secret.yaml %s is not a REPLACE-ME placeholder", key)
		}
	}

	// KEDA scales the Deployment on the lag of the stream and consumer the
	// workers use, read from the NATS server the workers connect to.
	so := objs["ScaledObject/alertdesk"]
	if n := str(dig(so, "spec", "scaleTargetRef", "name")); n != "alertdesk" {
		t.Errorf("ScaledObject scales %q, want the Deployment alertdesk", n)
	}
	if lo := dig(so, "spec", "minReplicaCount"); lo != dig(dep, "spec", "replicas") {
		t.Errorf("ScaledObject minReplicaCount %v, want the Deployment's replicas %v", lo, dig(dep, "spec", "replicas"))
	}
	trig := dig(so, "spec", "triggers", 0)
	meta := dig(trig, "metadata")
	if typ := str(dig(trig, "type")); typ != "nats-jetstream" {
		t.Errorf("trigger type %q, want nats-jetstream", typ)
	}
	if s, want := str(dig(meta, "stream")), cmp.Or(env["ALERTDESK_STREAM"], configDefault(t, "ALERTDESK_STREAM")); s != want {
		t.Errorf("trigger stream %q, want %q", s, want)
	}
	if s, want := str(dig(meta, "consumer")), cmp.Or(env["ALERTDESK_CONSUMER"], configDefault(t, "ALERTDESK_CONSUMER")); s != want {
		t.Errorf("trigger consumer %q, want %q", s, want)
	}
	if n, err := strconv.Atoi(str(dig(meta, "lagThreshold"))); err != nil || n <= 0 {
		t.Errorf("lagThreshold %v, want a positive integer", dig(meta, "lagThreshold"))
	}
	natsOpts, err := server.ProcessConfigFile(repoPath(natsConfFile))
	if err != nil {
		t.Fatal(err)
	}
	natsURL, err := url.Parse(env["ALERTDESK_NATS_URL"])
	if err != nil {
		t.Fatal(err)
	}
	if want := net.JoinHostPort(natsURL.Hostname(), strconv.Itoa(natsOpts.HTTPPort)); str(dig(meta, "natsServerMonitoringEndpoint")) != want {
		t.Errorf("natsServerMonitoringEndpoint %v, want %s (the host of ALERTDESK_NATS_URL, the monitoring port of %s)", dig(meta, "natsServerMonitoringEndpoint"), want, natsConfFile)
	}
}

// TestDeploySecretsWired: every secret setting of the config struct is
// wired in both deployments. In Kubernetes it comes from a key of a Secret,
// optional so that deleting the key turns its feature off (or, the TOPdesk
// password, from a Secret mounted at its _FILE variable); in compose the
// worker that serves HTTP sets it.
func TestDeploySecretsWired(t *testing.T) {
	var secrets []string
	for name, f := range configVars() {
		if f.Type == reflect.TypeFor[secret]() {
			secrets = append(secrets, name)
		}
	}
	slices.Sort(secrets)
	if len(secrets) < 3 {
		t.Fatalf("secret settings %v: the walk is broken", secrets)
	}

	objs := k8sObjects(t)
	env, mounts := k8sContainerEnv(t, objs), k8sMounts(t, objs)
	optional := map[string]bool{}
	for _, e := range dig(k8sContainer(t, objs), "env").([]any) {
		optional[str(dig(e, "name"))] = dig(e, "valueFrom", "secretKeyRef", "optional") == true
	}
	for _, name := range secrets {
		if file := env[name+"_FILE"]; file != "" {
			if !strings.HasPrefix(mounts[file], "Secret/") {
				t.Errorf("Kubernetes: %s_FILE=%s is mounted from %q, not from a Secret", name, file, mounts[file])
			}
			continue
		}
		if !strings.HasPrefix(env[name], "secret:") || !optional[name] {
			t.Errorf("Kubernetes: %s is %q, want an optional key of a Secret", name, env[name])
		}
	}

	served := 0
	for svc, w := range composeWorkers(t) {
		if dig(w, "ports") == nil {
			continue
		}
		served++
		env := composeEnv(t, w)
		for _, name := range secrets {
			if _, ok := env[name]; !ok && env[name+"_FILE"] == "" {
				t.Errorf("%s: %s, which serves HTTP, does not set %s", composeFile, svc, name)
			}
		}
	}
	if served == 0 {
		t.Errorf("%s: no worker publishes its HTTP port", composeFile)
	}
}

// ---- The configurations pass the worker's validation ----

// isolateEnv unsets every ALERTDESK_* variable for the test, so that
// envconfig applies its defaults.
func isolateEnv(t *testing.T) {
	t.Helper()
	for name := range configVars() {
		t.Setenv(name, "")
		os.Unsetenv(name)
	}
}

// validateEnv loads env as the worker would and runs validateWorker.
func validateEnv(t *testing.T, env map[string]string) *config {
	t.Helper()
	isolateEnv(t)
	for k, v := range env {
		if !strings.HasPrefix(k, envPrefix+"_SIM_") {
			t.Setenv(k, v)
		}
	}
	cfg, err := loadConfig((*config).validateWorker)
	if err != nil {
		t.Fatalf("the worker rejects this configuration: %v", err)
	}
	return cfg
}

// resolveOnSim resolves the mapping's TOPdesk names against the simulator's
// default tenant, the one docker-compose.yml runs.
func resolveOnSim(t *testing.T, m *mapping.Mapping) {
	t.Helper()
	sim := topdesktest.Start(t, topdesktest.Options{})
	td, err := topdesk.NewClient(sim.URL(), topdesk.Options{Username: topdesktest.DefaultUsername, Password: topdesktest.DefaultPassword, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := topdesk.NewResolver(td).ResolveAll(t.Context(), m.Names()); err != nil {
		t.Errorf("mapping names do not resolve in the simulator's tenant: %v", err)
	}
}

func TestDeployConfigsValidate(t *testing.T) {
	t.Run("compose workers", func(t *testing.T) {
		for name, w := range composeWorkers(t) {
			t.Run(name, func(t *testing.T) {
				env := composeEnv(t, w)
				env["ALERTDESK_MAPPING_FILE"] = repoPath(composeMappingSource(t, w, env))
				cfg := validateEnv(t, env)
				m, err := mapping.LoadFile(cfg.MappingFile)
				if err != nil {
					t.Fatalf("mapping.LoadFile(%s): %v", cfg.MappingFile, err)
				}
				resolveOnSim(t, m)
			})
		}
	})
	t.Run("kubernetes deployment", func(t *testing.T) {
		objs := k8sObjects(t)
		env := k8sContainerEnv(t, objs)
		dir := t.TempDir()
		// Write each mounted file where the variables can find it.
		for mountPath, source := range k8sMounts(t, objs) {
			kind, rest, _ := strings.Cut(source, "/")
			name, key, _ := strings.Cut(rest, "/")
			local := filepath.Join(dir, filepath.FromSlash(mountPath))
			if err := os.MkdirAll(filepath.Dir(local), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(local, []byte(str(k8sData(objs[kind+"/"+name], key))), 0o600); err != nil {
				t.Fatal(err)
			}
			for k, v := range env {
				if v == mountPath {
					env[k] = local
				}
			}
		}
		for k, v := range env {
			if ref, ok := strings.CutPrefix(v, "secret:"); ok {
				secret, key, _ := strings.Cut(ref, "/")
				env[k] = str(k8sData(objs["Secret/"+secret], key))
			}
		}
		cfg := validateEnv(t, env)
		if cfg.Replicas != 3 {
			t.Errorf("ALERTDESK_REPLICAS %d: a NATS cluster needs 3", cfg.Replicas)
		}
		m, err := mapping.LoadFile(cfg.MappingFile)
		if err != nil {
			t.Fatalf("the mapping of ConfigMap alertdesk-mapping does not load: %v", err)
		}
		resolveOnSim(t, m)
	})
	t.Run("mapping files", func(t *testing.T) {
		entries, err := os.ReadDir(repoPath("deploy/mappings"))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if _, err := mapping.LoadFile(repoPath("deploy/mappings/" + e.Name())); err != nil {
				t.Errorf("deploy/mappings/%s: %v", e.Name(), err)
			}
		}
	})
}

// ---- Alertmanager, alert rules and dashboard against a running worker ----

func TestDeployAlertmanagerConfig(t *testing.T) {
	doc := yamlDocs(t, alertmanagerFile)[0]
	recv := str(dig(doc, "route", "receiver"))
	var wh any
	for _, r := range dig(doc, "receivers").([]any) {
		if str(dig(r, "name")) == recv {
			wh = dig(r, "webhook_configs", 0)
		}
	}
	if wh == nil {
		t.Fatalf("the route's receiver %q has no webhook_configs", recv)
	}
	u, err := url.Parse(str(dig(wh, "url")))
	if err != nil {
		t.Fatal(err)
	}
	// The shown example sends the bearer token inside TLS, terminated in
	// front of alertdesk (which serves plain HTTP), and trusts a named CA.
	if u.Scheme != "https" || u.Path != "/v1/alertmanager" || !strings.HasPrefix(u.Hostname(), "alertdesk.") {
		t.Errorf("webhook URL %s: want https://alertdesk.…/v1/alertmanager, so the bearer token never travels in clear", u)
	}
	if dig(wh, "http_config", "tls_config", "ca_file") == nil {
		t.Error("http_config.tls_config.ca_file is not set: show how Alertmanager trusts the certificate in front of alertdesk")
	}
	if dig(wh, "send_resolved") != true {
		t.Error("send_resolved is not true: resolved alerts would never close their incidents")
	}
	auth := dig(wh, "http_config", "authorization")
	if str(dig(auth, "type")) != "Bearer" || (dig(auth, "credentials_file") == nil && dig(auth, "credentials") == nil) {
		t.Errorf("http_config.authorization %v: want type Bearer with credentials or credentials_file", auth)
	}
}

// The NetworkPolicy admits only named namespaces, and only to the port that
// serves ingest, metrics and health, of exactly the Deployment's pods.
func TestDeployNetworkPolicy(t *testing.T) {
	objs := k8sObjects(t)
	np := objs["NetworkPolicy/alertdesk"]
	if np == nil {
		t.Fatal("the kustomization defines no NetworkPolicy/alertdesk: any pod in the cluster could reach the ingest port")
	}
	podLabels := dig(objs["Deployment/alertdesk"], "spec", "template", "metadata", "labels")
	if sel := dig(np, "spec", "podSelector", "matchLabels"); sel == nil || !reflect.DeepEqual(sel, podLabels) {
		t.Errorf("podSelector %v, want the Deployment's pod labels %v", sel, podLabels)
	}
	if types := dig(np, "spec", "policyTypes"); !slices.Contains(types.([]any), any("Ingress")) {
		t.Errorf("policyTypes %v lack Ingress", types)
	}
	rules, _ := dig(np, "spec", "ingress").([]any)
	if len(rules) == 0 {
		t.Fatal("no ingress rule: the policy would refuse Prometheus and Alertmanager too")
	}
	for i, r := range rules {
		from, _ := dig(r, "from").([]any)
		if len(from) == 0 {
			t.Errorf("ingress rule %d has no from: it admits every pod", i)
		}
		for _, peer := range from {
			if dig(peer, "namespaceSelector", "matchLabels", "kubernetes.io/metadata.name") == nil && dig(peer, "podSelector") == nil {
				t.Errorf("ingress rule %d: peer %v names no namespace or pods", i, peer)
			}
		}
		ports, _ := dig(r, "ports").([]any)
		if len(ports) != 1 || (str(dig(ports[0], "port")) != "http" && str(dig(ports[0], "port")) != httpPort(t)) {
			t.Errorf("ingress rule %d ports %v, want only the http port", i, ports)
		}
	}
}

// promMatcher is one label matcher of a selector.
type promMatcher struct{ label, op, value string }

// promSelector is a metric name with its label matchers.
type promSelector struct {
	metric   string
	matchers []promMatcher
}

var (
	grafanaVarRe   = regexp.MustCompile(`\$(\{[^}]*\}|[A-Za-z_][A-Za-z0-9_]*)`)
	promBracesRe   = regexp.MustCompile(`([A-Za-z_:][A-Za-z0-9_:]*)?\{([^}]*)\}`)
	promMatcherRe  = regexp.MustCompile(`^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*$`)
	promGroupingRe = regexp.MustCompile(`\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)`)
	promIdentRe    = regexp.MustCompile(`[A-Za-z_:][A-Za-z0-9_:]*`)
	promFunctions  = []string{"abs", "absent", "avg", "avg_over_time", "bottomk", "clamp_max", "clamp_min", "count", "count_over_time",
		"delta", "deriv", "histogram_quantile", "increase", "irate", "label_values", "max", "max_over_time", "min", "min_over_time",
		"predict_linear", "quantile", "rate", "scalar", "stddev", "sum", "sum_over_time", "time", "topk", "vector"}
	promKeywords = []string{"and", "or", "unless", "bool", "offset", "inf", "nan"}
)

// parsePromQL finds the selectors and grouping labels of a PromQL
// expression (Grafana variables allowed). It knows the functions and
// keywords above, so that a typo in one is an error, not a metric.
func parsePromQL(expr string) (sels []promSelector, grouping []string, err error) {
	e := grafanaVarRe.ReplaceAllString(expr, grafanaRangeValue)
	for _, m := range promBracesRe.FindAllStringSubmatch(e, -1) {
		if m[1] == "" {
			return nil, nil, fmt.Errorf("selector {%s} without a metric name", m[2])
		}
		sel := promSelector{metric: m[1]}
		for part := range strings.SplitSeq(m[2], ",") {
			if strings.TrimSpace(part) == "" {
				continue
			}
			mm := promMatcherRe.FindStringSubmatch(part)
			if mm == nil {
				return nil, nil, fmt.Errorf("cannot read label matcher %q", part)
			}
			sel.matchers = append(sel.matchers, promMatcher{mm[1], mm[2], mm[3]})
		}
		sels = append(sels, sel)
	}
	e = promBracesRe.ReplaceAllString(e, " ")
	for _, m := range promGroupingRe.FindAllStringSubmatch(e, -1) {
		for l := range strings.SplitSeq(m[2], ",") {
			if l = strings.TrimSpace(l); l != "" {
				grouping = append(grouping, l)
			}
		}
	}
	e = promGroupingRe.ReplaceAllString(e, " ")
	e = regexp.MustCompile(`\[[^\]]*\]`).ReplaceAllString(e, " ")
	for _, loc := range promIdentRe.FindAllStringIndex(e, -1) {
		if loc[0] > 0 && strings.ContainsRune("0123456789.", rune(e[loc[0]-1])) {
			continue // the exponent of a number or the unit of a duration
		}
		ident := e[loc[0]:loc[1]]
		switch {
		case strings.HasPrefix(strings.TrimSpace(e[loc[1]:]), "("):
			if !slices.Contains(promFunctions, ident) {
				return nil, nil, fmt.Errorf("unknown function %s", ident)
			}
		case slices.Contains(promKeywords, ident):
		default:
			sels = append(sels, promSelector{metric: ident})
		}
	}
	if len(sels) == 0 {
		return nil, nil, errors.New("no metric in the expression")
	}
	return sels, grouping, nil
}

func TestParsePromQL(t *testing.T) {
	tests := []struct {
		expr         string
		wantMetrics  []string
		wantGrouping []string
		wantErr      bool
	}{
		{`sum by (class) (increase(alertdesk_dlq_entries_total[15m])) > 0`, []string{"alertdesk_dlq_entries_total"}, []string{"class"}, false},
		{`histogram_quantile(0.99, sum by (le) (rate(x_bucket{job=~"$job"}[$__rate_interval])))`, []string{"x_bucket"}, []string{"le"}, false},
		{`max(a) > 1e3 and max by (job) (deriv(b[10m])) > 0`, []string{"a", "b"}, []string{"job"}, false},
		{`up{job="alertdesk"} == 0`, []string{"up"}, nil, false},
		{`1 - min(c{status!="ok",op="x"})`, []string{"c"}, nil, false},
		{`rat(a[5m])`, nil, nil, true},
		{`{job="x"}`, nil, nil, true},
		{`1 + 2`, nil, nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.expr, func(t *testing.T) {
			sels, grouping, err := parsePromQL(tc.expr)
			if (err != nil) != tc.wantErr {
				t.Fatalf("error %v, want error %v", err, tc.wantErr)
			}
			var got []string
			for _, s := range sels {
				got = append(got, s.metric)
			}
			slices.Sort(got)
			if !slices.Equal(got, tc.wantMetrics) || !slices.Equal(grouping, tc.wantGrouping) {
				t.Errorf("metrics %q grouping %q, want %q %q", got, grouping, tc.wantMetrics, tc.wantGrouping)
			}
		})
	}
}

// scrape is what a worker's /metrics exports: series name -> label name ->
// values seen.
type scrape map[string]map[string][]string

func parseScrape(t *testing.T, body []byte) (scrape, map[string]*dto.MetricFamily) {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	out := scrape{}
	add := func(series string, labels []*dto.LabelPair, extra ...string) {
		if out[series] == nil {
			out[series] = map[string][]string{}
		}
		for _, l := range labels {
			out[series][l.GetName()] = append(out[series][l.GetName()], l.GetValue())
		}
		for _, e := range extra {
			out[series][e] = append(out[series][e], "")
		}
	}
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			switch f.GetType() {
			case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
				add(name+"_bucket", m.GetLabel(), "le")
				add(name+"_sum", m.GetLabel())
				add(name+"_count", m.GetLabel())
			case dto.MetricType_SUMMARY:
				add(name, m.GetLabel(), "quantile")
				add(name+"_sum", m.GetLabel())
				add(name+"_count", m.GetLabel())
			default:
				add(name, m.GetLabel())
			}
		}
	}
	return out, fams
}

// checkExpr holds one expression against the scrape; it returns the
// labels the expression groups by.
func checkExpr(t *testing.T, where, expr string, exported scrape) []string {
	t.Helper()
	sels, grouping, err := parsePromQL(expr)
	if err != nil {
		t.Errorf("%s: %q: %v", where, expr, err)
		return nil
	}
	known := slices.Clone(targetLabels)
	for _, s := range sels {
		if s.metric == "up" { // made by Prometheus for every target
			continue
		}
		labels, ok := exported[s.metric]
		if !ok {
			t.Errorf("%s: %q queries %s, which a running worker does not export", where, expr, s.metric)
			continue
		}
		for l := range labels {
			known = append(known, l)
		}
		for _, m := range s.matchers {
			if slices.Contains(targetLabels, m.label) {
				continue
			}
			values, ok := labels[m.label]
			if !ok {
				t.Errorf("%s: %q matches label %s, which %s does not have", where, expr, m.label, s.metric)
				continue
			}
			if (m.op == "=" || m.op == "!=") && !slices.Contains(values, m.value) {
				t.Errorf("%s: %q matches %s%s%q; the worker exported only %q", where, expr, m.label, m.op, m.value, uniq(values))
			}
		}
	}
	for _, g := range grouping {
		if !slices.Contains(known, g) {
			t.Errorf("%s: %q groups by %s, a label none of its metrics has", where, expr, g)
		}
	}
	return grouping
}

func uniq(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return slices.Compact(s)
}

// deployWorker is a worker started by runWorker against an embedded
// JetStream server and the simulator.
type deployWorker struct {
	base string
	sim  *topdesktest.Sim
	hc   *http.Client
}

func startDeployWorker(t *testing.T, ingestToken string) *deployWorker {
	t.Helper()
	ns := workertest.StartJetStream(t)
	sim := topdesktest.Start(t, topdesktest.Options{})

	// The configuration of a compose worker, pointed at the test servers.
	var env map[string]string
	var mappingSource string
	for _, w := range composeWorkers(t) {
		env = composeEnv(t, w)
		mappingSource = composeMappingSource(t, w, env)
		break
	}
	env["ALERTDESK_NATS_URL"] = ns.ClientURL()
	env["ALERTDESK_TOPDESK_URL"] = sim.URL()
	env["ALERTDESK_TOPDESK_USERNAME"] = topdesktest.DefaultUsername
	env["ALERTDESK_TOPDESK_PASSWORD"] = topdesktest.DefaultPassword
	env["ALERTDESK_MAPPING_FILE"] = repoPath(mappingSource)
	env["ALERTDESK_HTTP_ADDR"] = "127.0.0.1:0"
	env["ALERTDESK_INGEST_TOKEN"] = ingestToken
	cfg := validateEnv(t, env)

	addr := startWorker(t, cfg, zerolog.Nop())
	w := &deployWorker{base: "http://" + addr, sim: sim, hc: &http.Client{Timeout: 10 * time.Second}}
	wait.For(t, 30*time.Second, "the worker to be ready", func() bool {
		code, _ := w.get(t, "/readyz")
		return code == http.StatusOK
	})
	return w
}

func (w *deployWorker) get(t *testing.T, p string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, w.base+p, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := w.hc.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", p, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", p, err)
	}
	return resp.StatusCode, b
}

// alertmanagerWebhook is what Alertmanager posts for one alert.
func alertmanagerWebhook(status string, ends time.Time) string {
	return fmt.Sprintf(`{"version": "4", "status": %[1]q, "receiver": "alertdesk", "groupKey": "{}:{alertname=\"DiskFull\"}",
  "groupLabels": {"alertname": "DiskFull"}, "commonLabels": {}, "commonAnnotations": {}, "externalURL": "http://alertmanager:9093",
  "alerts": [{"status": %[1]q, "labels": {"alertname": "DiskFull", "instance": "db-7", "severity": "critical"},
    "annotations": {"summary": "Disk / at 97%% on db-7"}, "startsAt": "2026-11-22T10:00:00Z", "endsAt": %[2]q,
    "generatorURL": "http://prometheus:9090/graph", "fingerprint": "d15cf0114db7a0e1"}]}`, status, ends.Format(time.RFC3339))
}

// TestDeployAgainstRunningWorker runs a worker configured like the compose
// workers, sends it an alert the way deploy/alertmanager.yml does, and then
// checks every expression of the alert rules and the dashboard against what
// its /metrics exports.
func TestDeployAgainstRunningWorker(t *testing.T) {
	const token = "deploy-test-ingest-token"
	w := startDeployWorker(t, token)

	// Alertmanager's webhook, as deploy/alertmanager.yml configures it.
	am := dig(yamlDocs(t, alertmanagerFile)[0], "receivers", 0, "webhook_configs", 0)
	amURL, err := url.Parse(str(dig(am, "url")))
	if err != nil {
		t.Fatal(err)
	}
	post := func(body string) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, w.base+amURL.Path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", str(dig(am, "http_config", "authorization", "type"))+" "+token)
		resp, err := w.hc.Do(req)
		if err != nil {
			t.Fatalf("POST %s: %v", amURL.Path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body) // only for the failure message
		if resp.StatusCode/100 != 2 {
			t.Fatalf("POST %s: %s %s", amURL.Path, resp.Status, b)
		}
	}
	post(alertmanagerWebhook("firing", time.Time{}))
	wait.For(t, 30*time.Second, "the incident in the simulator", func() bool { return len(w.sim.Incidents()) == 1 })
	if got := w.sim.Incidents()[0]; got.BriefDescription != "db-7: Disk / at 97% on db-7" || got.OperatorGroup != "Operations" {
		t.Errorf("incident %q for group %q, want the example mapping's \"db-7: Disk / at 97%% on db-7\" for Operations", got.BriefDescription, got.OperatorGroup)
	}
	post(alertmanagerWebhook("resolved", time.Date(2026, 11, 22, 10, 30, 0, 0, time.UTC)))
	wait.For(t, 30*time.Second, "the incident to close", func() bool {
		incs := w.sim.Incidents()
		return len(incs) == 1 && incs[0].Closed
	})

	code, body := w.get(t, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: %d", code)
	}
	exported, fams := parseScrape(t, body)

	t.Run("alert rules", func(t *testing.T) {
		groups := dig(yamlDocs(t, alertRulesFile)[0], "groups").([]any)
		var names []string
		for _, g := range groups {
			for _, r := range dig(g, "rules").([]any) {
				name := str(dig(r, "alert"))
				names = append(names, name)
				if dig(r, "labels", "severity") == nil || dig(r, "annotations", "summary") == nil || dig(r, "annotations", "description") == nil {
					t.Errorf("rule %s lacks a severity label, a summary or a description", name)
				}
				if f := str(dig(r, "for")); f != "" {
					if _, err := model.ParseDuration(f); err != nil {
						t.Errorf("rule %s: for %q: %v", name, f, err)
					}
				}
				grouping := checkExpr(t, "rule "+name, str(dig(r, "expr")), exported)
				annotations, _ := json.Marshal(dig(r, "annotations"))
				for _, m := range regexp.MustCompile(`\$labels\.([A-Za-z_]+)`).FindAllStringSubmatch(string(annotations), -1) {
					if len(grouping) > 0 && !slices.Contains(grouping, m[1]) {
						t.Errorf("rule %s: annotations use $labels.%s, which the expression aggregates away (by %v)", name, m[1], grouping)
					}
				}
			}
		}
		for _, want := range []string{"AlertdeskDeadLettersGrowing", "AlertdeskTopdeskBreakerOpen", "AlertdeskTopdeskCredentialsRejected",
			"AlertdeskConsumerLagRising", "AlertdeskStalled", "AlertdeskTopdeskErrors"} {
			if !slices.Contains(names, want) {
				t.Errorf("no rule %s in %s", want, alertRulesFile)
			}
		}
	})

	t.Run("dashboard", func(t *testing.T) {
		var dash struct {
			Panels     []dashPanel `json:"panels"`
			Templating struct {
				List []struct {
					Name  string `json:"name"`
					Query any    `json:"query"`
				} `json:"list"`
			} `json:"templating"`
		}
		if err := json.Unmarshal(readRepoFile(t, dashboardFile), &dash); err != nil {
			t.Fatal(err)
		}
		used := map[string]bool{}
		ids := map[int]bool{}
		var walk func([]dashPanel)
		walk = func(panels []dashPanel) {
			for _, p := range panels {
				if ids[p.ID] {
					t.Errorf("panel id %d is used twice", p.ID)
				}
				ids[p.ID] = true
				if p.Type != "row" && len(p.Targets) == 0 {
					t.Errorf("panel %q has no query", p.Title)
				}
				for _, tg := range p.Targets {
					checkExpr(t, "panel "+p.Title, tg.Expr, exported)
					sels, _, _ := parsePromQL(tg.Expr)
					for _, s := range sels {
						used[strings.TrimSuffix(s.metric, "_bucket")] = true
					}
				}
				walk(p.Panels)
			}
		}
		walk(dash.Panels)
		for _, v := range dash.Templating.List {
			if q := str(dig(v.Query, "query")); strings.HasPrefix(q, "label_values(") {
				metric, _, _ := strings.Cut(strings.TrimPrefix(q, "label_values("), ",")
				if _, ok := exported[strings.TrimSpace(metric)]; !ok {
					t.Errorf("variable %s queries %s, which the worker does not export", v.Name, metric)
				}
			}
		}
		for name := range fams {
			if strings.HasPrefix(name, "alertdesk_") && !used[name] {
				t.Errorf("the dashboard has no panel for %s", name)
			}
		}
	})
}

// dashPanel is the part of a Grafana panel the test reads.
type dashPanel struct {
	ID      int    `json:"id"`
	Type    string `json:"type"`
	Title   string `json:"title"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
	Panels []dashPanel `json:"panels"`
}
