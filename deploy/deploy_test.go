package deploy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/acme-sp/wholesale-provisioner/provisioning/webexsim"
)

// Paths are relative to this package's directory, where `go test` runs.
const (
	repoRoot         = ".."
	composePath      = "../docker-compose.yml"
	dockerfilePath   = "Dockerfile"
	dockerignorePath = "../.dockerignore"
	goModPath        = "../go.mod"

	// dockerfileInRepo is the Dockerfile as the compose file names it.
	dockerfileInRepo = "deploy/Dockerfile"
	// appPackage is the package the image is built from.
	appPackage = "./cmd/provisioner"
)

// binDir holds the provisioner binary built once for the whole package.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "deploy-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "creating temporary directory:", err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// ---------------------------------------------------------------------------
// docker-compose.yml

// composeFile is the part of the Compose specification the stack uses. The
// decoder rejects unknown keys, so a misspelt key (enviroment:, depends-on:)
// fails the test instead of being ignored; add a field here to use a new key.
type composeFile struct {
	Name     string              `yaml:"name"`
	Services map[string]*service `yaml:"services"`
	Volumes  map[string]any      `yaml:"volumes"`
	Networks map[string]any      `yaml:"networks"`
}

type service struct {
	Image       string       `yaml:"image"`
	Hostname    string       `yaml:"hostname"`
	Build       *build       `yaml:"build"`
	Entrypoint  stringList   `yaml:"entrypoint"`
	Command     stringList   `yaml:"command"`
	Environment environment  `yaml:"environment"`
	Ports       []string     `yaml:"ports"`
	Volumes     []string     `yaml:"volumes"`
	DependsOn   dependsOn    `yaml:"depends_on"`
	Healthcheck *healthcheck `yaml:"healthcheck"`
	Restart     string       `yaml:"restart"`
	Profiles    []string     `yaml:"profiles"`
}

type build struct {
	Context    string `yaml:"context"`
	Dockerfile string `yaml:"dockerfile"`
}

// UnmarshalYAML accepts the short form `build: path` as well as the mapping.
func (b *build) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		b.Context = n.Value
		return nil
	}
	type plain build
	return n.Decode((*plain)(b))
}

type healthcheck struct {
	Test        stringList `yaml:"test"`
	Interval    string     `yaml:"interval"`
	Timeout     string     `yaml:"timeout"`
	Retries     int        `yaml:"retries"`
	StartPeriod string     `yaml:"start_period"`
}

// stringList is a command: a list, or a string split on white space.
type stringList []string

func (l *stringList) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*l = strings.Fields(n.Value)
		return nil
	}
	return n.Decode((*[]string)(l))
}

// environment is a service's environment, from a mapping or a list of NAME=value.
type environment map[string]string

func (e *environment) UnmarshalYAML(n *yaml.Node) error {
	*e = environment{}
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			v := n.Content[i+1]
			if v.Kind != yaml.ScalarNode {
				return fmt.Errorf("line %d: environment variable %s: want a scalar value", v.Line, n.Content[i].Value)
			}
			(*e)[n.Content[i].Value] = v.Value
		}
	case yaml.SequenceNode:
		for _, item := range n.Content {
			k, v, _ := strings.Cut(item.Value, "=")
			(*e)[k] = v
		}
	default:
		return fmt.Errorf("line %d: environment: want a mapping or a list", n.Line)
	}
	return nil
}

// dependsOn maps each dependency to its condition; the list form means service_started.
type dependsOn map[string]string

func (d *dependsOn) UnmarshalYAML(n *yaml.Node) error {
	*d = dependsOn{}
	switch n.Kind {
	case yaml.SequenceNode:
		for _, item := range n.Content {
			(*d)[item.Value] = "service_started"
		}
	case yaml.MappingNode:
		var m map[string]struct {
			Condition string `yaml:"condition"`
			Restart   bool   `yaml:"restart"`
			Required  *bool  `yaml:"required"`
		}
		if err := n.Decode(&m); err != nil {
			return err
		}
		for name, dep := range m {
			if dep.Condition == "" {
				dep.Condition = "service_started"
			}
			(*d)[name] = dep.Condition
		}
	default:
		return fmt.Errorf("line %d: depends_on: want a mapping or a list", n.Line)
	}
	return nil
}

// loadCompose parses docker-compose.yml strictly.
func loadCompose(t *testing.T) *composeFile {
	t.Helper()
	data, err := os.ReadFile(composePath)
	if err != nil {
		t.Fatalf("reading compose file: %v", err)
	}
	var top map[string]yaml.Node
	if err := yaml.Unmarshal(data, &top); err != nil {
		t.Fatalf("%s is not valid YAML: %v", composePath, err)
	}
	if _, ok := top["version"]; ok {
		t.Errorf("%s has a top-level version: key; the Compose specification has none (Compose warns it is obsolete)", composePath)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var cf composeFile
	if err := dec.Decode(&cf); err != nil {
		t.Fatalf("decoding %s: %v\n(an unknown field is either a typo or a key this test does not know yet: add it to the composeFile or service type)", composePath, err)
	}
	for name, svc := range cf.Services {
		if svc == nil {
			t.Fatalf("%s: service %s is empty", composePath, name)
		}
	}
	return &cf
}

// mustService returns the named service or stops the test.
func mustService(t *testing.T, cf *composeFile, name string) *service {
	t.Helper()
	svc, ok := cf.Services[name]
	if !ok {
		t.Fatalf("%s: no service %q (services: %v)", composePath, name, sortedKeys(cf.Services))
	}
	return svc
}

// mustEnv returns a service's environment variable, failing the test when it is unset or empty.
func (s *service) mustEnv(t *testing.T, svcName, key string) string {
	t.Helper()
	v := s.Environment[key]
	if v == "" {
		t.Fatalf("service %s: environment variable %s is not set", svcName, key)
	}
	return v
}

// args is the service's command line: entrypoint followed by command.
func (s *service) args() []string {
	return slices.Concat([]string(s.Entrypoint), []string(s.Command))
}

// builtFromDockerfile reports whether the service's image is built from deploy/Dockerfile.
func (s *service) builtFromDockerfile() bool {
	if s.Build == nil {
		return false
	}
	df := s.Build.Dockerfile
	if df == "" {
		df = "Dockerfile"
	}
	return filepath.Clean(filepath.Join(s.Build.Context, df)) == filepath.Clean(dockerfileInRepo)
}

func TestComposeServices(t *testing.T) {
	cf := loadCompose(t)
	for _, name := range []string{"kafka", "kafka-init", "webex-sim", "provisioner", "prometheus", "grafana"} {
		if _, ok := cf.Services[name]; !ok {
			t.Errorf("%s: service %q is missing (services: %v)", composePath, name, sortedKeys(cf.Services))
		}
	}
	for name, svc := range cf.Services {
		if svc.Build == nil {
			if svc.Image == "" {
				t.Errorf("service %s has neither image nor build", name)
			}
			continue
		}
		ctx := filepath.Join(repoRoot, svc.Build.Context)
		if filepath.Clean(ctx) != filepath.Clean(repoRoot) {
			t.Errorf("service %s: build context %q is not the repository root (.); the Dockerfile copies go.mod and the sources from it", name, svc.Build.Context)
		}
		if !svc.builtFromDockerfile() {
			t.Errorf("service %s: builds from %q, want %s", name, filepath.Join(svc.Build.Context, svc.Build.Dockerfile), dockerfileInRepo)
		}
		if _, err := os.Stat(filepath.Join(ctx, svc.Build.Dockerfile)); err != nil {
			t.Errorf("service %s: Dockerfile: %v", name, err)
		}
	}
	for name, svc := range cf.Services {
		for dep := range svc.DependsOn {
			if _, ok := cf.Services[dep]; !ok {
				t.Errorf("service %s depends on %q, which is not a service", name, dep)
			}
		}
	}
}

// kafkaListeners is what the kafka service's environment says about its listeners.
type kafkaListeners struct {
	bind       map[string]string // KAFKA_LISTENERS: name → host:port
	advertised map[string]string // KAFKA_ADVERTISED_LISTENERS: name → host:port
	controller string            // KAFKA_CONTROLLER_LISTENER_NAMES (the first)
}

// parseListeners parses NAME://host:port,... into name → host:port.
func parseListeners(s string) (map[string]string, error) {
	out := map[string]string{}
	for item := range strings.SplitSeq(s, ",") {
		name, hostPort, ok := strings.Cut(strings.TrimSpace(item), "://")
		if !ok || name == "" {
			return nil, fmt.Errorf("listener %q: want NAME://host:port", item)
		}
		if _, _, err := net.SplitHostPort(hostPort); err != nil {
			return nil, fmt.Errorf("listener %q: %v", item, err)
		}
		out[name] = hostPort
	}
	return out, nil
}

func listenersOf(t *testing.T, kafka *service) kafkaListeners {
	t.Helper()
	bind, err := parseListeners(kafka.mustEnv(t, "kafka", "KAFKA_LISTENERS"))
	if err != nil {
		t.Fatalf("kafka: KAFKA_LISTENERS: %v", err)
	}
	adv, err := parseListeners(kafka.mustEnv(t, "kafka", "KAFKA_ADVERTISED_LISTENERS"))
	if err != nil {
		t.Fatalf("kafka: KAFKA_ADVERTISED_LISTENERS: %v", err)
	}
	ctrl, _, _ := strings.Cut(kafka.mustEnv(t, "kafka", "KAFKA_CONTROLLER_LISTENER_NAMES"), ",")
	return kafkaListeners{bind: bind, advertised: adv, controller: ctrl}
}

// internalBootstrap returns the address other containers reach the broker at:
// the advertised listener whose host is the kafka service's name.
func internalBootstrap(t *testing.T, cf *composeFile) string {
	t.Helper()
	kafka := mustService(t, cf, "kafka")
	var addrs []string
	for _, hp := range listenersOf(t, kafka).advertised {
		if host, _, _ := net.SplitHostPort(hp); host == "kafka" {
			addrs = append(addrs, hp)
		}
	}
	if len(addrs) != 1 {
		t.Fatalf("kafka: want exactly one advertised listener on host kafka (for other containers), got %v", addrs)
	}
	return addrs[0]
}

func portOf(t *testing.T, hostPort string) string {
	t.Helper()
	_, port, err := net.SplitHostPort(hostPort)
	if err != nil {
		t.Fatalf("%q is not host:port: %v", hostPort, err)
	}
	return port
}

// portMapping is one short-syntax port: [ip:]published:target[/protocol].
type portMapping struct{ published, target string }

func parsePorts(t *testing.T, svcName string, ports []string) []portMapping {
	t.Helper()
	var out []portMapping
	for _, p := range ports {
		p, _, _ = strings.Cut(p, "/")
		parts := strings.Split(p, ":")
		if len(parts) < 2 {
			t.Errorf("service %s: port %q publishes no fixed host port; want published:target", svcName, p)
			continue
		}
		out = append(out, portMapping{published: parts[len(parts)-2], target: parts[len(parts)-1]})
	}
	return out
}

func TestComposeKafka(t *testing.T) {
	cf := loadCompose(t)
	kafka := mustService(t, cf, "kafka")

	if !regexp.MustCompile(`^apache/kafka:4\.\d+\.\d+$`).MatchString(kafka.Image) {
		t.Errorf("kafka: image %q, want apache/kafka:4.x.y (KRaft-only Kafka 4)", kafka.Image)
	}

	env := kafka.Environment
	if roles := strings.Split(kafka.mustEnv(t, "kafka", "KAFKA_PROCESS_ROLES"), ","); !sameSet(roles, []string{"broker", "controller"}) {
		t.Errorf("kafka: KAFKA_PROCESS_ROLES=%q, want broker,controller (single combined KRaft node)", env["KAFKA_PROCESS_ROLES"])
	}
	if env["CLUSTER_ID"] == "" {
		t.Errorf("kafka: CLUSTER_ID is not set; the apache/kafka image needs it to format KRaft storage")
	}
	ls := listenersOf(t, kafka)
	ctrlAddr, ok := ls.bind[ls.controller]
	if !ok {
		t.Fatalf("kafka: controller listener %q is not in KAFKA_LISTENERS %v", ls.controller, ls.bind)
	}
	nodeID := kafka.mustEnv(t, "kafka", "KAFKA_NODE_ID")
	if want := nodeID + "@kafka:" + portOf(t, ctrlAddr); env["KAFKA_CONTROLLER_QUORUM_VOTERS"] != want {
		t.Errorf("kafka: KAFKA_CONTROLLER_QUORUM_VOTERS=%q, want %q (node id @ service name : controller port)", env["KAFKA_CONTROLLER_QUORUM_VOTERS"], want)
	}

	protocols := map[string]string{}
	for item := range strings.SplitSeq(kafka.mustEnv(t, "kafka", "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"), ",") {
		name, proto, _ := strings.Cut(item, ":")
		protocols[name] = proto
	}
	for name := range ls.bind {
		if protocols[name] == "" {
			t.Errorf("kafka: listener %s has no entry in KAFKA_LISTENER_SECURITY_PROTOCOL_MAP", name)
		}
	}
	for name, hp := range ls.advertised {
		if name == ls.controller {
			t.Errorf("kafka: the controller listener %s must not be advertised to clients", name)
		}
		bind, ok := ls.bind[name]
		if !ok {
			t.Errorf("kafka: advertised listener %s is not in KAFKA_LISTENERS", name)
			continue
		}
		if portOf(t, bind) != portOf(t, hp) {
			t.Errorf("kafka: listener %s binds port %s but advertises port %s", name, portOf(t, bind), portOf(t, hp))
		}
	}
	if ib := env["KAFKA_INTER_BROKER_LISTENER_NAME"]; ls.advertised[ib] == "" || ib == ls.controller {
		t.Errorf("kafka: KAFKA_INTER_BROKER_LISTENER_NAME=%q, want an advertised, non-controller listener", ib)
	}

	for key, want := range map[string]string{
		"KAFKA_AUTO_CREATE_TOPICS_ENABLE":                "false",
		"KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR":         "1",
		"KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
		"KAFKA_TRANSACTION_STATE_LOG_MIN_ISR":            "1",
		"KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS":         "0",
	} {
		if got := env[key]; got != want {
			t.Errorf("kafka: %s=%q, want %q", key, got, want)
		}
	}

	// The host reaches the broker through a published port whose advertised
	// listener is localhost on that same port: otherwise metadata sends clients
	// to an address they cannot reach.
	hostListener := ""
	for _, pm := range parsePorts(t, "kafka", kafka.Ports) {
		for name, hp := range ls.advertised {
			host, port, _ := net.SplitHostPort(hp)
			if port != pm.target {
				continue
			}
			if host != "localhost" && host != "127.0.0.1" {
				t.Errorf("kafka: published port %s:%s is listener %s advertised as %s; want localhost:%s for host clients", pm.published, pm.target, name, hp, pm.published)
			} else if port != pm.published {
				t.Errorf("kafka: listener %s is advertised as %s but published on host port %s", name, hp, pm.published)
			} else {
				hostListener = hp
			}
		}
	}
	if hostListener != "localhost:19092" {
		t.Errorf("kafka: want host listener localhost:19092 published as 19092:19092, got %q (ports %v)", hostListener, kafka.Ports)
	}

	if kafka.Healthcheck == nil || len(kafka.Healthcheck.Test) == 0 {
		t.Fatalf("kafka: no healthcheck; kafka-init waits for service_healthy")
	}
	hc := strings.Join(kafka.Healthcheck.Test, " ")
	if !strings.Contains(hc, "kafka-broker-api-versions.sh") && !strings.Contains(hc, "kafka-topics.sh") {
		t.Errorf("kafka: healthcheck %q runs neither kafka-broker-api-versions.sh nor kafka-topics.sh", hc)
	}
	bootstrapOK := false
	for _, hp := range ls.bind {
		bootstrapOK = bootstrapOK || strings.Contains(hc, "--bootstrap-server localhost:"+portOf(t, hp))
	}
	if !bootstrapOK {
		t.Errorf("kafka: healthcheck %q does not use --bootstrap-server localhost:<a listener port>", hc)
	}
}

// topicCreation is one `kafka-topics.sh --create` in kafka-init.
type topicCreation struct {
	bootstrap, partitions, replication string
	ifNotExists                        bool
}

func TestComposeKafkaInit(t *testing.T) {
	cf := loadCompose(t)
	kafka := mustService(t, cf, "kafka")
	initSvc := mustService(t, cf, "kafka-init")
	if initSvc.Image != kafka.Image {
		t.Errorf("kafka-init: image %q, want the kafka service's %q (same tools version)", initSvc.Image, kafka.Image)
	}
	if c := initSvc.DependsOn["kafka"]; c != "service_healthy" {
		t.Errorf("kafka-init: depends_on kafka condition %q, want service_healthy", c)
	}
	if initSvc.Restart != "" && initSvc.Restart != "no" {
		t.Errorf("kafka-init: restart %q, want \"no\" (it runs once and exits)", initSvc.Restart)
	}

	created := createdTopics(t, initSvc)
	internal := internalBootstrap(t, cf)
	for topic, c := range created {
		if c.bootstrap != internal {
			t.Errorf("kafka-init: topic %s: --bootstrap-server %q, want the internal listener %s", topic, c.bootstrap, internal)
		}
		if n, err := strconv.Atoi(c.partitions); err != nil || n < 1 {
			t.Errorf("kafka-init: topic %s: --partitions %q, want a positive number", topic, c.partitions)
		}
		if c.replication != "1" {
			t.Errorf("kafka-init: topic %s: --replication-factor %q, want 1 (one broker)", topic, c.replication)
		}
		if !c.ifNotExists {
			t.Errorf("kafka-init: topic %s: no --if-not-exists, so a second `up` fails", topic)
		}
	}

	prov := mustService(t, cf, "provisioner")
	run := usageOf(t, "run")
	for _, flag := range []string{"orders-topic", "outcomes-topic", "dead-letter-topic"} {
		topic := setting(t, prov, run, flag)
		if _, ok := created[topic]; !ok {
			t.Errorf("kafka-init does not create %q, the provisioner's --%s (%s); it creates %v", topic, flag, run.flags[flag].env, sortedKeys(created))
		}
	}
}

// createdTopics reads the kafka-topics.sh --create calls of a service's command.
func createdTopics(t *testing.T, svc *service) map[string]topicCreation {
	t.Helper()
	script := strings.Join(svc.args(), "\n")
	created := map[string]topicCreation{}
	for line := range strings.Lines(script) {
		f := strings.Fields(line)
		if !slices.ContainsFunc(f, func(s string) bool { return strings.HasSuffix(s, "kafka-topics.sh") }) || !slices.Contains(f, "--create") {
			continue
		}
		topic, _ := flagValue(f, "topic")
		if topic == "" {
			t.Errorf("kafka-init: %q creates a topic without --topic", strings.TrimSpace(line))
			continue
		}
		c := topicCreation{ifNotExists: slices.Contains(f, "--if-not-exists")}
		c.bootstrap, _ = flagValue(f, "bootstrap-server")
		c.partitions, _ = flagValue(f, "partitions")
		c.replication, _ = flagValue(f, "replication-factor")
		created[topic] = c
	}
	if len(created) == 0 {
		t.Fatalf("kafka-init: its command %q runs no kafka-topics.sh --create", script)
	}
	return created
}

func TestComposeWebexSim(t *testing.T) {
	cf := loadCompose(t)
	sim := mustService(t, cf, "webex-sim")
	if args := sim.args(); len(args) == 0 || args[0] != "webex-sim" {
		t.Fatalf("webex-sim: command %q, want webex-sim ...", args)
	}
	addr := setting(t, sim, usageOf(t, "webex-sim"), "addr")
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("webex-sim: --addr %q: %v", addr, err)
	}
	if host != "0.0.0.0" && host != "" && host != "::" {
		t.Errorf("webex-sim: --addr %q listens on %s only; other containers cannot reach it: use 0.0.0.0:%s", addr, host, port)
	}
	published := ""
	for _, pm := range parsePorts(t, "webex-sim", sim.Ports) {
		if pm.target == port {
			published = pm.published
		}
	}
	if published != "8080" {
		t.Errorf("webex-sim: listens on port %s; want it published as 8080 (ports %v)", port, sim.Ports)
	}
	if sim.Environment["PROVISIONER_SIM_TOKEN"] == "" {
		t.Errorf("webex-sim: PROVISIONER_SIM_TOKEN is not set, so the simulator accepts any token")
	}
}

func TestComposeProvisioner(t *testing.T) {
	cf := loadCompose(t)
	prov := mustService(t, cf, "provisioner")
	run := usageOf(t, "run")
	if args := prov.args(); len(args) == 0 || args[0] != "run" {
		t.Fatalf("provisioner: command %q, want run ...", args)
	}

	internal := internalBootstrap(t, cf)
	brokers := setting(t, prov, run, "brokers")
	for b := range strings.SplitSeq(brokers, ",") {
		if b != internal {
			t.Errorf("provisioner: broker %q (PROVISIONER_BROKERS=%q), want kafka's internal listener %s", b, brokers, internal)
		}
	}
	if setting(t, prov, run, "group-id") == "" {
		t.Errorf("provisioner: no consumer group id")
	}
	topics := map[string]string{}
	for _, flag := range []string{"orders-topic", "outcomes-topic", "dead-letter-topic"} {
		env := run.flags[flag].env
		if prov.Environment[env] == "" {
			t.Errorf("provisioner: %s is not set; name each topic explicitly, as kafka-init does", env)
		}
		topic := setting(t, prov, run, flag)
		if other, dup := topics[topic]; dup {
			t.Errorf("provisioner: --%s and --%s are both %q", other, flag, topic)
		}
		topics[topic] = flag
	}

	// The base URL must reach the simulator: its service name, its listening port, its base path.
	sim := mustService(t, cf, "webex-sim")
	simPort := portOf(t, setting(t, sim, usageOf(t, "webex-sim"), "addr"))
	raw := setting(t, prov, run, "webex-base-url")
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("provisioner: PROVISIONER_WEBEX_BASE_URL %q: %v", raw, err)
	}
	if u.Scheme != "http" || u.Hostname() != "webex-sim" || u.Port() != simPort || u.Path != webexsim.DefaultBasePath {
		t.Errorf("provisioner: PROVISIONER_WEBEX_BASE_URL=%q, want http://webex-sim:%s%s (the simulator's service, port and base path)", raw, simPort, webexsim.DefaultBasePath)
	}

	token := prov.Environment["PROVISIONER_WEBEX_TOKEN"]
	if token == "" && setting(t, prov, run, "webex-token-file") == "" {
		t.Errorf("provisioner: no Webex token: set PROVISIONER_WEBEX_TOKEN (or PROVISIONER_WEBEX_TOKEN_FILE)")
	}
	if simToken := sim.Environment["PROVISIONER_SIM_TOKEN"]; simToken != "" && token != simToken {
		t.Errorf("provisioner: PROVISIONER_WEBEX_TOKEN=%q differs from webex-sim's PROVISIONER_SIM_TOKEN=%q: every call would get 401", token, simToken)
	}

	if c := prov.DependsOn["kafka-init"]; c != "service_completed_successfully" {
		t.Errorf("provisioner: depends_on kafka-init condition %q, want service_completed_successfully (topics exist before it consumes)", c)
	}
	if _, ok := prov.DependsOn["webex-sim"]; !ok {
		t.Errorf("provisioner: does not depend on webex-sim")
	}
	if !slices.Contains([]string{"unless-stopped", "always", "on-failure"}, prov.Restart) {
		t.Errorf("provisioner: restart %q, want unless-stopped", prov.Restart)
	}

	// /metrics, /healthz and /readyz: set explicitly, reachable from the other containers.
	if prov.Environment[run.flags["http-addr"].env] == "" {
		t.Errorf("provisioner: %s is not set; Prometheus scrapes its port", run.flags["http-addr"].env)
	}

	// The whole configuration passes the binary's own validation.
	env := map[string]string{}
	for k, v := range prov.Environment {
		env[k] = v
	}
	if args := prov.args(); len(args) > 1 {
		for flag := range run.flags {
			if v, ok := flagValue(args[1:], flag); ok {
				env[run.flags[flag].env] = v
			}
		}
	}
	validateRunEnv(t, composePath+" provisioner", env)
}

// TestComposeProducers checks any service that runs `provisioner produce`.
func TestComposeProducers(t *testing.T) {
	cf := loadCompose(t)
	run := usageOf(t, "run")
	orders := setting(t, mustService(t, cf, "provisioner"), run, "orders-topic")
	internal := internalBootstrap(t, cf)
	for name, svc := range cf.Services {
		if args := svc.args(); !svc.builtFromDockerfile() || len(args) == 0 || args[0] != "produce" {
			continue
		}
		produce := usageOf(t, "produce")
		if got := setting(t, svc, produce, "orders-topic"); got != orders {
			t.Errorf("service %s: publishes to %q, but the provisioner consumes %q", name, got, orders)
		}
		if got := setting(t, svc, produce, "brokers"); got != internal {
			t.Errorf("service %s: brokers %q, want kafka's internal listener %s", name, got, internal)
		}
		if len(svc.Profiles) == 0 {
			t.Errorf("service %s: no profile, so every `docker compose up` publishes orders", name)
		}
		if c := svc.DependsOn["kafka-init"]; c != "service_completed_successfully" {
			t.Errorf("service %s: depends_on kafka-init condition %q, want service_completed_successfully", name, c)
		}
	}
}

// TestComposeFlagsAndEnvExist checks that every flag and PROVISIONER_* variable
// a service gives the provisioner binary is one its subcommand's --help lists.
func TestComposeFlagsAndEnvExist(t *testing.T) {
	cf := loadCompose(t)
	if !strings.Contains(usageOf(t, "run").text, "PROVISIONER_WEBEX_TOKEN") {
		t.Errorf("`provisioner run --help` no longer mentions PROVISIONER_WEBEX_TOKEN, which the compose file sets")
	}
	for _, name := range sortedKeys(cf.Services) {
		svc := cf.Services[name]
		if !svc.builtFromDockerfile() {
			continue
		}
		t.Run(name, func(t *testing.T) {
			args := svc.args()
			if len(args) == 0 {
				t.Fatalf("service %s: no command; the image's default is run, say it explicitly", name)
			}
			u := usageOf(t, args[0])
			for _, a := range args[1:] {
				if !strings.HasPrefix(a, "-") {
					continue
				}
				flag, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
				if _, ok := u.flags[flag]; !ok {
					t.Errorf("service %s: `provisioner %s` has no flag --%s (it has %v)", name, args[0], flag, sortedKeys(u.flags))
				}
			}
			for key := range svc.Environment {
				if !strings.HasPrefix(key, "PROVISIONER_") {
					continue
				}
				if !u.envs[key] {
					t.Errorf("service %s: `provisioner %s --help` does not mention %s, so the setting is ignored", name, args[0], key)
				}
			}
		})
	}
}

// ---------------------------------------------------------------------------
// The provisioner's own usage

// usage is what `provisioner <sub> --help` prints.
type usage struct {
	text  string
	flags map[string]flagDoc
	envs  map[string]bool // every PROVISIONER_* name it mentions, flag or not
}

type flagDoc struct{ env, def string }

var (
	usageMu    sync.Mutex
	usages     = map[string]*usage{}
	buildOnce  sync.Once
	binPath    string
	binErr     error
	flagLineRE = regexp.MustCompile(`^\s+--([a-z0-9-]+)\s+\[(PROVISIONER_[A-Z0-9_]+)\]$`)
	defaultRE  = regexp.MustCompile(`\(default ([^)]*)\)$`)
	envNameRE  = regexp.MustCompile(`PROVISIONER_[A-Z0-9_]+`)
)

// provisionerBinary builds cmd/provisioner once (like `go run`, but shared by every test).
func provisionerBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		binPath = filepath.Join(binDir, "provisioner")
		if runtime.GOOS == "windows" {
			binPath += ".exe"
		}
		cmd := exec.CommandContext(ctx, "go", "build", "-o", binPath, "../cmd/provisioner")
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build ../cmd/provisioner: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// usageOf runs `provisioner <sub> --help` and parses what it prints.
func usageOf(t *testing.T, sub string) *usage {
	t.Helper()
	usageMu.Lock()
	defer usageMu.Unlock()
	if u, ok := usages[sub]; ok {
		return u
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, provisionerBinary(t), sub, "--help")
	// Without PROVISIONER_* from the caller's environment, so defaults are the binary's own.
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "PROVISIONER_") })
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("provisioner %s --help: %v (is %q a subcommand?)\n%s", sub, err, sub, out)
	}
	u := &usage{text: string(out), flags: map[string]flagDoc{}, envs: map[string]bool{}}
	var last string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if m := flagLineRE.FindStringSubmatch(line); m != nil {
			last = m[1]
			u.flags[last] = flagDoc{env: m[2]}
			continue
		}
		if last != "" {
			if m := defaultRE.FindStringSubmatch(strings.TrimSpace(line)); m != nil {
				d := u.flags[last]
				d.def = m[1]
				u.flags[last] = d
			}
			last = ""
		}
	}
	for _, name := range envNameRE.FindAllString(u.text, -1) {
		u.envs[name] = true
	}
	if len(u.flags) == 0 {
		t.Fatalf("provisioner %s --help lists no flags in the form `--name  [PROVISIONER_NAME]`; has its usage format changed?\n%s", sub, out)
	}
	usages[sub] = u
	return u
}

// setting returns the value `provisioner <sub>` in svc uses for flag: the
// command-line flag, else its environment variable, else the printed default.
func setting(t *testing.T, svc *service, u *usage, flag string) string {
	t.Helper()
	doc, ok := u.flags[flag]
	if !ok {
		t.Fatalf("the subcommand has no flag --%s (flags: %v)", flag, sortedKeys(u.flags))
	}
	if args := svc.args(); len(args) > 0 {
		if v, ok := flagValue(args[1:], flag); ok {
			return v
		}
	}
	if v := svc.Environment[doc.env]; v != "" {
		return v
	}
	return doc.def
}

// flagValue finds --name value, --name=value, -name value or -name=value in args.
func flagValue(args []string, name string) (string, bool) {
	for i, a := range args {
		if !strings.HasPrefix(a, "-") {
			continue
		}
		n, v, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if n != name {
			continue
		}
		if hasValue {
			return v, true
		}
		if i+1 < len(args) {
			return args[i+1], true
		}
		return "", true
	}
	return "", false
}

// ---------------------------------------------------------------------------
// deploy/Dockerfile

type instruction struct {
	cmd  string // upper case: FROM, RUN, ...
	args string
	line int
}

type stage struct {
	index       int
	image, name string
	instrs      []instruction
}

// parseDockerfile splits a Dockerfile into stages, joining continuation lines
// and expanding ARGs declared before the first FROM in FROM lines.
func parseDockerfile(t *testing.T, data []byte) []*stage {
	t.Helper()
	var (
		instrs  []instruction
		pending strings.Builder
		start   int
	)
	for i, line := range strings.Split(string(data), "\n") {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		if pending.Len() == 0 {
			start = i + 1
		}
		if cont, ok := strings.CutSuffix(trimmed, `\`); ok {
			pending.WriteString(cont + " ")
			continue
		}
		pending.WriteString(trimmed)
		cmd, args, _ := strings.Cut(pending.String(), " ")
		instrs = append(instrs, instruction{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args), line: start})
		pending.Reset()
	}
	if pending.Len() > 0 {
		t.Fatalf("%s: line %d: continuation (\\) at end of file", dockerfilePath, start)
	}

	globalArgs := map[string]string{}
	var stages []*stage
	for _, in := range instrs {
		switch {
		case in.cmd == "ARG" && len(stages) == 0:
			k, v, _ := strings.Cut(in.args, "=")
			globalArgs[k] = strings.Trim(v, `"`)
		case in.cmd == "FROM":
			var f []string
			for _, w := range strings.Fields(in.args) {
				if !strings.HasPrefix(w, "--") {
					f = append(f, w)
				}
			}
			if len(f) == 0 {
				t.Fatalf("%s: line %d: FROM without an image", dockerfilePath, in.line)
			}
			s := &stage{index: len(stages), image: os.Expand(f[0], func(k string) string { return globalArgs[k] })}
			if len(f) >= 3 && strings.EqualFold(f[1], "AS") {
				s.name = f[2]
			}
			stages = append(stages, s)
		case len(stages) == 0:
			t.Fatalf("%s: line %d: %s before the first FROM", dockerfilePath, in.line, in.cmd)
		default:
			s := stages[len(stages)-1]
			s.instrs = append(s.instrs, in)
		}
	}
	return stages
}

// goLine returns go.mod's go line as major.minor and patch ("" when absent).
func goLine(t *testing.T) (majorMinor, patch string) {
	t.Helper()
	data, err := os.ReadFile(goModPath)
	if err != nil {
		t.Fatalf("reading go.mod: %v", err)
	}
	m := regexp.MustCompile(`(?m)^go\s+(\d+\.\d+)(?:\.(\d+))?\s*$`).FindSubmatch(data)
	if m == nil {
		t.Fatalf("%s has no go line", goModPath)
	}
	return string(m[1]), string(m[2])
}

func TestDockerfile(t *testing.T) {
	data, err := os.ReadFile(dockerfilePath)
	if err != nil {
		t.Fatalf("reading Dockerfile: %v", err)
	}
	stages := parseDockerfile(t, data)
	if len(stages) < 2 {
		t.Fatalf("%s has %d stage(s), want a multi-stage build (builder, then a small final image)", dockerfilePath, len(stages))
	}

	// The builder: golang image matching go.mod, a cached module download, a static build.
	var builder *stage
	for _, s := range stages {
		if strings.HasPrefix(s.image, "golang:") {
			builder = s
			break
		}
	}
	if builder == nil {
		t.Fatalf("%s: no stage FROM golang:<version>", dockerfilePath)
	}
	tag := strings.TrimPrefix(builder.image, "golang:")
	want, wantPatch := goLine(t)
	m := regexp.MustCompile(`^(\d+\.\d+)(?:\.(\d+))?(-.*)?$`).FindStringSubmatch(tag)
	switch {
	case m == nil || m[1] != want:
		t.Errorf("%s: builder image %s, want golang:%s to match go.mod's go line", dockerfilePath, builder.image, want)
	case m[2] != "" && wantPatch != "" && atoi(m[2]) < atoi(wantPatch):
		// Official golang images set GOTOOLCHAIN=local, so an older Go refuses the module.
		t.Errorf("%s: builder image %s is older than go.mod's go %s.%s; the build would fail (GOTOOLCHAIN=local)", dockerfilePath, builder.image, want, wantPatch)
	}

	var goBuild instruction
	cacheMount := false
	cgoEnv := false
	for _, in := range builder.instrs {
		if in.cmd == "ENV" && regexp.MustCompile(`\bCGO_ENABLED[= ]0\b`).MatchString(in.args) {
			cgoEnv = true
		}
		if in.cmd != "RUN" {
			continue
		}
		if strings.Contains(in.args, "--mount=type=cache") && strings.Contains(in.args, "target=/go/pkg/mod") {
			cacheMount = true
		}
		if strings.Contains(in.args, "go build") {
			goBuild = in
		}
	}
	if goBuild.cmd == "" {
		t.Fatalf("%s: the builder stage has no RUN ... go build", dockerfilePath)
	}
	if !cacheMount {
		t.Errorf("%s: no RUN --mount=type=cache,target=/go/pkg/mod in the builder; every build downloads all modules", dockerfilePath)
	}
	if !cgoEnv && !strings.Contains(goBuild.args, "CGO_ENABLED=0") {
		t.Errorf("%s: line %d: go build without CGO_ENABLED=0; the binary would need libc, which distroless/static lacks", dockerfilePath, goBuild.line)
	}
	buildArgs := strings.Fields(goBuild.args)
	for _, w := range []string{"-trimpath", appPackage} {
		if !slices.Contains(buildArgs, w) {
			t.Errorf("%s: line %d: go build has no %s: %s", dockerfilePath, goBuild.line, w, goBuild.args)
		}
	}
	if _, err := os.Stat(filepath.Join(repoRoot, appPackage, "main.go")); err != nil {
		t.Errorf("%s builds %s: %v", dockerfilePath, appPackage, err)
	}
	binOut, ok := flagValue(buildArgs, "o")
	if !ok || binOut == "" {
		t.Fatalf("%s: line %d: go build has no -o <path>", dockerfilePath, goBuild.line)
	}

	// The final stage: non-root, the binary copied from the builder, exec-form entrypoint.
	final := stages[len(stages)-1]
	if final == builder || strings.HasPrefix(final.image, "golang:") {
		t.Errorf("%s: the final stage is FROM %s; want a small runtime image", dockerfilePath, final.image)
	}
	user := ""
	for _, in := range final.instrs {
		if in.cmd == "USER" {
			user = in.args
		}
	}
	switch name, _, _ := strings.Cut(user, ":"); {
	case name == "root" || name == "0":
		t.Errorf("%s: the final stage runs as USER %s", dockerfilePath, user)
	case name == "" && !strings.HasSuffix(final.image, ":nonroot") && !strings.HasSuffix(final.image, "-nonroot"):
		t.Errorf("%s: the final stage (FROM %s) sets no USER and is not a :nonroot image; it would run as root", dockerfilePath, final.image)
	}

	var copied, dest string
	for _, in := range final.instrs {
		if in.cmd != "COPY" {
			continue
		}
		f := strings.Fields(in.args)
		from, ok := flagValue(f, "from")
		if !ok || (from != builder.name && from != strconv.Itoa(builder.index)) {
			continue
		}
		var paths []string
		for _, w := range f {
			if !strings.HasPrefix(w, "--") {
				paths = append(paths, w)
			}
		}
		if len(paths) == 2 {
			copied, dest = paths[0], paths[1]
		}
	}
	if copied != binOut {
		t.Errorf("%s: the final stage does not COPY --from=%s %s (what go build -o writes); copied %q", dockerfilePath, builder.name, binOut, copied)
	}
	entrypoint := execForm(t, final, "ENTRYPOINT")
	if len(entrypoint) == 0 || entrypoint[0] != dest {
		t.Errorf("%s: ENTRYPOINT %q, want the exec form [%q] (the copied binary)", dockerfilePath, entrypoint, dest)
	}
	if cmd := execForm(t, final, "CMD"); !slices.Equal(cmd, []string{"run"}) {
		t.Errorf("%s: CMD %q, want [\"run\"]", dockerfilePath, cmd)
	}

	labels := ""
	for _, in := range final.instrs {
		if in.cmd == "LABEL" {
			labels += in.args + " "
		}
	}
	for _, key := range []string{"org.opencontainers.image.source", "org.opencontainers.image.title"} {
		if !strings.Contains(labels, key+"=") {
			t.Errorf("%s: the final stage has no LABEL %s", dockerfilePath, key)
		}
	}
}

// execForm returns the JSON array of the stage's last ENTRYPOINT or CMD.
func execForm(t *testing.T, s *stage, cmd string) []string {
	t.Helper()
	var out []string
	for _, in := range s.instrs {
		if in.cmd != cmd {
			continue
		}
		out = nil
		if err := json.Unmarshal([]byte(in.args), &out); err != nil {
			t.Errorf("%s: line %d: %s %s is not the exec (JSON) form, so signals would go to a shell: %v", dockerfilePath, in.line, cmd, in.args, err)
		}
	}
	return out
}

// ---------------------------------------------------------------------------
// .dockerignore

// ignoreRule is one .dockerignore line, matched like Docker does: * and ? do
// not cross /, ** crosses any number of directories, and a pattern that
// matches a directory excludes everything under it. The last matching rule wins.
type ignoreRule struct {
	pattern string
	negate  bool
	re      *regexp.Regexp
}

func parseDockerignore(t *testing.T, data []byte) []ignoreRule {
	t.Helper()
	var rules []ignoreRule
	for line := range strings.Lines(string(data)) {
		p := strings.TrimSpace(line)
		if p == "" || strings.HasPrefix(p, "#") {
			continue
		}
		r := ignoreRule{pattern: p}
		if rest, ok := strings.CutPrefix(p, "!"); ok {
			r.negate, p = true, rest
		}
		p = strings.TrimPrefix(path.Clean(filepath.ToSlash(p)), "/")
		var b strings.Builder
		b.WriteString("^")
		for i := 0; i < len(p); i++ {
			switch c := p[i]; {
			case c == '*' && strings.HasPrefix(p[i:], "**/"):
				b.WriteString("(.*/)?")
				i += 2
			case c == '*' && strings.HasPrefix(p[i:], "**"):
				b.WriteString(".*")
				i++
			case c == '*':
				b.WriteString("[^/]*")
			case c == '?':
				b.WriteString("[^/]")
			default:
				b.WriteString(regexp.QuoteMeta(string(c)))
			}
		}
		b.WriteString("$")
		re, err := regexp.Compile(b.String())
		if err != nil {
			t.Fatalf("%s: pattern %q: %v", dockerignorePath, r.pattern, err)
		}
		r.re = re
		rules = append(rules, r)
	}
	return rules
}

// excluded reports whether file (slash-separated, relative to the context) is
// left out of the build context, and by which pattern.
func excluded(rules []ignoreRule, file string) (bool, string) {
	ex, by := false, ""
	for _, r := range rules {
		for p := file; p != ""; {
			if r.re.MatchString(p) {
				ex, by = !r.negate, r.pattern
				break
			}
			i := strings.LastIndex(p, "/")
			if i < 0 {
				break
			}
			p = p[:i]
		}
	}
	return ex, by
}

func TestDockerignore(t *testing.T) {
	data, err := os.ReadFile(dockerignorePath)
	if err != nil {
		t.Fatalf("reading .dockerignore: %v", err)
	}
	rules := parseDockerignore(t, data)
	for _, p := range []string{".git/HEAD", ".kafka-local/data/x", ".cache/x", "cmd/provisioner/provisioner.test", "cpu.prof"} {
		if ex, _ := excluded(rules, p); !ex {
			t.Errorf("%s does not exclude %s", dockerignorePath, p)
		}
	}

	// Everything `go build ./cmd/provisioner` reads must stay in the context:
	// go.mod, go.sum, and the Go and embedded files of the module's packages.
	needed := []string{"go.mod", "go.sum"}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "list", "-deps",
		"-f", `{{if and .Module .Module.Main}}{{.Dir}}{{range .GoFiles}}|{{.}}{{end}}{{range .EmbedFiles}}|{{.}}{{end}}{{end}}`,
		"../"+strings.TrimPrefix(appPackage, "./"))
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v", appPackage, err)
	}
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(out)) {
		parts := strings.Split(strings.TrimSpace(line), "|")
		if parts[0] == "" {
			continue
		}
		rel, err := filepath.Rel(root, parts[0])
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range parts[1:] {
			needed = append(needed, filepath.ToSlash(filepath.Join(rel, f)))
		}
	}
	if len(needed) < 5 {
		t.Fatalf("go list found only %v; expected the module's packages", needed)
	}
	for _, f := range needed {
		if ex, by := excluded(rules, f); ex {
			t.Errorf("%s excludes %s (pattern %q), which the image build needs", dockerignorePath, f, by)
		}
	}
}

func TestDockerignoreMatcher(t *testing.T) {
	rules := parseDockerignore(t, []byte("# comment\n.git\n**/*.test\nbench*.txt\ndocs/*\n!docs/keep.md\n"))
	for file, want := range map[string]bool{
		".git":                 true,
		".git/objects/ab":      true,
		".github/workflows/ci": false,
		"a.test":               true,
		"x/y/a.test":           true,
		"bench-1.txt":          true,
		"sub/bench-1.txt":      false,
		"docs/a.md":            true,
		"docs/keep.md":         false,
		"main.go":              false,
	} {
		if got, _ := excluded(rules, file); got != want {
			t.Errorf("excluded(%q) = %v, want %v", file, got, want)
		}
	}
}

// ---------------------------------------------------------------------------
// helpers

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	for i := range a {
		a[i] = strings.TrimSpace(a[i])
	}
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(slices.Compact(a), slices.Compact(b))
}
