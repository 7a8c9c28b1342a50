// Package deploy_test checks the packaging files at the repository root and
// in deploy/: the Dockerfile, compose.yaml, the systemd unit and the
// Caddyfiles they start. Docker's engine is not on every machine: the image
// is built here only when `docker info` answers; otherwise the Dockerfile and
// the compose file are checked for what they must say.
package deploy_test

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
	"gopkg.in/yaml.v3"

	_ "github.com/hookgate/hookgate/module"
)

func read(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", path))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// instruction is one Dockerfile instruction with its stage.
type instruction struct {
	stage int
	op    string
	args  string
}

// parseDockerfile joins continuation lines and drops comments.
func parseDockerfile(t *testing.T, src []byte) []instruction {
	t.Helper()
	var out []instruction
	stage, cur := -1, ""
	sc := bufio.NewScanner(bytes.NewReader(src))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasSuffix(line, "\\") {
			cur += strings.TrimSuffix(line, "\\") + " "
			continue
		}
		cur += line
		op, args, _ := strings.Cut(cur, " ")
		op = strings.ToUpper(op)
		if op == "FROM" {
			stage++
		}
		out = append(out, instruction{stage, op, strings.TrimSpace(args)})
		cur = ""
	}
	return out
}

func TestDockerfile(t *testing.T) {
	ins := parseDockerfile(t, read(t, "Dockerfile"))
	var froms []instruction
	for _, in := range ins {
		if in.op == "FROM" {
			froms = append(froms, in)
		}
		if in.op == "ADD" {
			t.Errorf("ADD %s: use COPY (ADD fetches URLs and unpacks archives)", in.args)
		}
	}
	if len(froms) < 2 || !strings.Contains(froms[0].args, " AS build") {
		t.Fatalf("want a multi-stage build with a build stage, got %v", froms)
	}
	last := len(froms) - 1
	final := map[string][]string{}
	for _, in := range ins {
		if in.stage == last {
			final[in.op] = append(final[in.op], in.args)
		}
		if in.stage == 0 && in.op == "RUN" && strings.Contains(in.args, "go build") && !strings.Contains(in.args, "./caddy") {
			t.Errorf("the build stage builds %q, not ./caddy", in.args)
		}
	}
	users := final["USER"]
	if len(users) == 0 || strings.HasPrefix(users[len(users)-1], "0") || strings.HasPrefix(users[len(users)-1], "root") {
		t.Errorf("the final stage must run as a non-root user, USER = %v", users)
	}
	if !slices.ContainsFunc(final["VOLUME"], func(v string) bool { return strings.Contains(v, "/data") }) {
		t.Errorf("no VOLUME for /data in the final stage: %v", final["VOLUME"])
	}
	env := strings.Join(final["ENV"], " ")
	for _, want := range []string{"XDG_DATA_HOME=/data", "HOOKGATE_TOKEN_FILE=/data/"} {
		if !strings.Contains(env, want) {
			t.Errorf("final stage ENV lacks %s: %s", want, env)
		}
	}
	// Every file copied from the context exists.
	for _, in := range ins {
		if in.op != "COPY" || strings.Contains(in.args, "--from=") {
			continue
		}
		fields := strings.Fields(in.args)
		for _, src := range fields[:len(fields)-1] {
			if src == "." || strings.HasPrefix(src, "--") {
				continue
			}
			if _, err := os.Stat(filepath.Join("..", src)); err != nil {
				t.Errorf("COPY %s: %v", src, err)
			}
		}
	}
	ignore := string(read(t, ".dockerignore"))
	for _, want := range []string{".git", ".hookgate"} {
		if !strings.Contains(ignore, want+"\n") {
			t.Errorf(".dockerignore lacks %s (state and history stay out of the image)", want)
		}
	}
}

// TestDockerBuild builds the image where a Docker engine runs.
func TestDockerBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	if exec.Command("docker", "info").Run() != nil {
		t.Skip("no Docker engine on this machine: the Dockerfile is checked by TestDockerfile")
	}
	cmd := exec.Command("docker", "build", "-q", "-t", "hookgate:test", "..")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("docker build: %v\n%s", err, out)
	}
}

// adapt adapts a Caddyfile of deploy/ with env set and returns the JSON.
func adapt(t *testing.T, path string, env map[string]string) string {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
	out, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt(read(t, path), map[string]any{"filename": path})
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	for _, w := range warnings {
		t.Errorf("%s:%d: %s", w.File, w.Line, w.Message)
	}
	return string(out)
}

func TestDeployCaddyfiles(t *testing.T) {
	single := adapt(t, "deploy/Caddyfile", nil)
	for _, want := range []string{`"storage_dir":"/data/caddy/hookgate"`, `"token_files":["/data/api-token"]`, `"handler":"hookgate_ingress"`, `"writer":{"output":"buffered"}`} {
		if !strings.Contains(single, want) {
			t.Errorf("deploy/Caddyfile: %s not in %s", want, single)
		}
	}
	cluster := adapt(t, "deploy/Caddyfile.cluster", map[string]string{"HOOKGATE_TOKEN": "t0ken"})
	for _, want := range []string{`"replicas":3`, `nats://nats1:4222`, `nats://nats2:4222`, `nats://nats3:4222`, `"writer":{"output":"buffered"}`} {
		if !strings.Contains(cluster, want) {
			t.Errorf("deploy/Caddyfile.cluster: %s not in %s", want, cluster)
		}
	}
	t.Setenv("HOOKGATE_TOKEN", "")
	if _, _, err := caddyconfig.GetAdapter("caddyfile").Adapt(read(t, "deploy/Caddyfile.cluster"), map[string]any{"filename": "deploy/Caddyfile.cluster"}); err == nil {
		t.Error("deploy/Caddyfile.cluster adapts without HOOKGATE_TOKEN: the API would have no token")
	}
}

type composeService struct {
	Build       any               `yaml:"build"`
	Image       string            `yaml:"image"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	Volumes     []string          `yaml:"volumes"`
	Ports       []string          `yaml:"ports"`
	DependsOn   []string          `yaml:"depends_on"`
}

func TestCompose(t *testing.T) {
	var doc struct {
		Services map[string]composeService `yaml:"services"`
		Volumes  map[string]any            `yaml:"volumes"`
	}
	if err := yaml.Unmarshal(read(t, "compose.yaml"), &doc); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	var nats, gateways []string
	for name, s := range doc.Services {
		switch {
		case strings.HasPrefix(s.Image, "nats:"):
			nats = append(nats, name)
		case s.Build != nil:
			gateways = append(gateways, name)
		default:
			t.Errorf("service %s is neither a NATS node nor a gateway", name)
		}
		for _, v := range s.Volumes {
			src, _, _ := strings.Cut(v, ":")
			if strings.HasPrefix(src, "./") {
				if _, err := os.Stat(filepath.Join("..", src)); err != nil {
					t.Errorf("service %s mounts %s: %v", name, src, err)
				}
			} else if _, ok := doc.Volumes[src]; !ok {
				t.Errorf("service %s uses volume %s, not declared", name, src)
			}
		}
	}
	slices.Sort(nats)
	slices.Sort(gateways)
	if len(nats) != 3 || len(gateways) != 2 {
		t.Fatalf("want 3 NATS nodes and 2 gateways, got %v and %v", nats, gateways)
	}
	// The NATS nodes form one JetStream cluster: each routes to the two others.
	for _, name := range nats {
		args := strings.Join(doc.Services[name].Command, " ")
		for _, want := range []string{"--jetstream", "--cluster_name hookgate", "--name " + name, "--store_dir /data"} {
			if !strings.Contains(args, want) {
				t.Errorf("%s: %q lacks %s", name, args, want)
			}
		}
		for _, other := range nats {
			if other != name && !strings.Contains(args, "nats://"+other+":6222") {
				t.Errorf("%s does not route to %s: %s", name, other, args)
			}
		}
	}
	// The gateways run the cluster Caddyfile, which names these nodes.
	cluster := string(read(t, "deploy/Caddyfile.cluster"))
	for _, n := range nats {
		if !strings.Contains(cluster, "nats://"+n+":4222") {
			t.Errorf("deploy/Caddyfile.cluster does not name %s", n)
		}
	}
	hostPorts := map[string]string{}
	for _, name := range gateways {
		s := doc.Services[name]
		if !slices.Contains(s.Volumes, "./deploy/Caddyfile.cluster:/etc/caddy/Caddyfile:ro") {
			t.Errorf("%s does not mount deploy/Caddyfile.cluster: %v", name, s.Volumes)
		}
		if _, ok := s.Environment["HOOKGATE_TOKEN"]; !ok {
			t.Errorf("%s has no HOOKGATE_TOKEN", name)
		}
		for _, n := range nats {
			if !slices.Contains(s.DependsOn, n) {
				t.Errorf("%s does not depend on %s", name, n)
			}
		}
		for _, p := range s.Ports {
			host, _, _ := strings.Cut(p, ":")
			if other, dup := hostPorts[host]; dup {
				t.Errorf("%s and %s both publish port %s", other, name, host)
			}
			hostPorts[host] = name
		}
	}
}

func TestSystemdUnit(t *testing.T) {
	unit := string(read(t, "deploy/hookgate.service"))
	for _, want := range []string{"DynamicUser=yes", "StateDirectory=hookgate", "HOOKGATE_TOKEN_FILE=/var/lib/hookgate/api-token",
		"ExecStart=/usr/bin/hookgate run --config /etc/hookgate/Caddyfile", "ExecReload=/usr/bin/hookgate reload", "NoNewPrivileges=yes"} {
		if !strings.Contains(unit, want) {
			t.Errorf("deploy/hookgate.service lacks %s", want)
		}
	}
	if strings.Contains(unit, "--environ") {
		t.Error("--environ prints the environment (and any token in it) to the log")
	}
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed: the unit was checked for its settings only")
	}
	// verify wants the binaries to exist: point them at one that does.
	bin, err := exec.LookPath("true")
	if err != nil {
		t.Skip("no true(1)")
	}
	path := filepath.Join(t.TempDir(), "hookgate.service")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(unit, "/usr/bin/hookgate", bin)), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", path).CombinedOutput()
	// Lines about the host's own units are not this unit's problems.
	var own []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if regexp.MustCompile(`hookgate\.service`).MatchString(l) {
			own = append(own, l)
		}
	}
	if err != nil || len(own) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}
