package deploy

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/acme-sp/wholesale-provisioner/internal/app"
)

// The Kubernetes manifests are checked without a cluster: each document is
// decoded strictly into the part of its kind's schema that the manifests use
// (a misspelt key fails, as `kubectl apply --validate=strict` would), and the
// documents are checked against each other, the Dockerfile, the compose file
// and the binary's own flags and configuration validation.

const k8sDir = "kubernetes"

// k8sMeta is the metadata the manifests use.
type k8sMeta struct {
	Name        string            `yaml:"name"`
	Namespace   string            `yaml:"namespace"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

type labelSelector struct {
	MatchLabels map[string]string `yaml:"matchLabels"`
}

type k8sDeployment struct {
	APIVersion string  `yaml:"apiVersion"`
	Kind       string  `yaml:"kind"`
	Metadata   k8sMeta `yaml:"metadata"`
	Spec       struct {
		Replicas             *int          `yaml:"replicas"`
		RevisionHistoryLimit *int          `yaml:"revisionHistoryLimit"`
		Selector             labelSelector `yaml:"selector"`
		Strategy             struct {
			Type          string `yaml:"type"`
			RollingUpdate struct {
				MaxSurge       any `yaml:"maxSurge"`
				MaxUnavailable any `yaml:"maxUnavailable"`
			} `yaml:"rollingUpdate"`
		} `yaml:"strategy"`
		Template struct {
			Metadata k8sMeta    `yaml:"metadata"`
			Spec     k8sPodSpec `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

type k8sPodSpec struct {
	ServiceAccountName            string `yaml:"serviceAccountName"`
	AutomountServiceAccountToken  *bool  `yaml:"automountServiceAccountToken"`
	TerminationGracePeriodSeconds *int   `yaml:"terminationGracePeriodSeconds"`
	SecurityContext               struct {
		RunAsNonRoot   *bool  `yaml:"runAsNonRoot"`
		RunAsUser      *int64 `yaml:"runAsUser"`
		RunAsGroup     *int64 `yaml:"runAsGroup"`
		FSGroup        *int64 `yaml:"fsGroup"`
		SeccompProfile struct {
			Type string `yaml:"type"`
		} `yaml:"seccompProfile"`
	} `yaml:"securityContext"`
	TopologySpreadConstraints []struct {
		MaxSkew           int           `yaml:"maxSkew"`
		TopologyKey       string        `yaml:"topologyKey"`
		WhenUnsatisfiable string        `yaml:"whenUnsatisfiable"`
		LabelSelector     labelSelector `yaml:"labelSelector"`
	} `yaml:"topologySpreadConstraints"`
	Containers []k8sContainer `yaml:"containers"`
	Volumes    []struct {
		Name   string `yaml:"name"`
		Secret *struct {
			SecretName  string `yaml:"secretName"`
			DefaultMode *int   `yaml:"defaultMode"`
			Optional    *bool  `yaml:"optional"`
			Items       []struct {
				Key  string `yaml:"key"`
				Path string `yaml:"path"`
			} `yaml:"items"`
		} `yaml:"secret"`
		ConfigMap *struct {
			Name string `yaml:"name"`
		} `yaml:"configMap"`
		EmptyDir *struct{} `yaml:"emptyDir"`
	} `yaml:"volumes"`
}

type k8sContainer struct {
	Name            string   `yaml:"name"`
	Image           string   `yaml:"image"`
	ImagePullPolicy string   `yaml:"imagePullPolicy"`
	Command         []string `yaml:"command"`
	Args            []string `yaml:"args"`
	Ports           []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
		Protocol      string `yaml:"protocol"`
	} `yaml:"ports"`
	EnvFrom []struct {
		ConfigMapRef *struct {
			Name string `yaml:"name"`
		} `yaml:"configMapRef"`
		SecretRef *struct {
			Name string `yaml:"name"`
		} `yaml:"secretRef"`
	} `yaml:"envFrom"`
	Env []struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom *struct {
			SecretKeyRef    *keyRef `yaml:"secretKeyRef"`
			ConfigMapKeyRef *keyRef `yaml:"configMapKeyRef"`
			FieldRef        *struct {
				FieldPath string `yaml:"fieldPath"`
			} `yaml:"fieldRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
	LivenessProbe  *k8sProbe `yaml:"livenessProbe"`
	ReadinessProbe *k8sProbe `yaml:"readinessProbe"`
	StartupProbe   *k8sProbe `yaml:"startupProbe"`
	Resources      struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	SecurityContext struct {
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
		ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
		Capabilities             struct {
			Drop []string `yaml:"drop"`
		} `yaml:"capabilities"`
	} `yaml:"securityContext"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
		ReadOnly  bool   `yaml:"readOnly"`
		SubPath   string `yaml:"subPath"`
	} `yaml:"volumeMounts"`
}

type keyRef struct {
	Name     string `yaml:"name"`
	Key      string `yaml:"key"`
	Optional *bool  `yaml:"optional"`
}

type k8sProbe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port any    `yaml:"port"`
	} `yaml:"httpGet"`
	InitialDelaySeconds int `yaml:"initialDelaySeconds"`
	PeriodSeconds       int `yaml:"periodSeconds"`
	TimeoutSeconds      int `yaml:"timeoutSeconds"`
	FailureThreshold    int `yaml:"failureThreshold"`
	SuccessThreshold    int `yaml:"successThreshold"`
}

type k8sConfigMap struct {
	APIVersion string            `yaml:"apiVersion"`
	Kind       string            `yaml:"kind"`
	Metadata   k8sMeta           `yaml:"metadata"`
	Data       map[string]string `yaml:"data"`
}

type k8sSecret struct {
	APIVersion string            `yaml:"apiVersion"`
	Kind       string            `yaml:"kind"`
	Metadata   k8sMeta           `yaml:"metadata"`
	Type       string            `yaml:"type"`
	StringData map[string]string `yaml:"stringData"`
	Data       map[string]string `yaml:"data"`
}

type k8sServiceAccount struct {
	APIVersion                   string  `yaml:"apiVersion"`
	Kind                         string  `yaml:"kind"`
	Metadata                     k8sMeta `yaml:"metadata"`
	AutomountServiceAccountToken *bool   `yaml:"automountServiceAccountToken"`
}

type k8sPDB struct {
	APIVersion string  `yaml:"apiVersion"`
	Kind       string  `yaml:"kind"`
	Metadata   k8sMeta `yaml:"metadata"`
	Spec       struct {
		MinAvailable               any           `yaml:"minAvailable"`
		MaxUnavailable             any           `yaml:"maxUnavailable"`
		Selector                   labelSelector `yaml:"selector"`
		UnhealthyPodEvictionPolicy string        `yaml:"unhealthyPodEvictionPolicy"`
	} `yaml:"spec"`
}

type kedaScaledObject struct {
	APIVersion string  `yaml:"apiVersion"`
	Kind       string  `yaml:"kind"`
	Metadata   k8sMeta `yaml:"metadata"`
	Spec       struct {
		ScaleTargetRef struct {
			APIVersion string `yaml:"apiVersion"`
			Kind       string `yaml:"kind"`
			Name       string `yaml:"name"`
		} `yaml:"scaleTargetRef"`
		MinReplicaCount *int `yaml:"minReplicaCount"`
		MaxReplicaCount *int `yaml:"maxReplicaCount"`
		PollingInterval int  `yaml:"pollingInterval"`
		CooldownPeriod  int  `yaml:"cooldownPeriod"`
		Fallback        *struct {
			FailureThreshold int `yaml:"failureThreshold"`
			Replicas         int `yaml:"replicas"`
		} `yaml:"fallback"`
		Advanced struct {
			HorizontalPodAutoscalerConfig struct {
				Behavior struct {
					ScaleUp   hpaRules `yaml:"scaleUp"`
					ScaleDown hpaRules `yaml:"scaleDown"`
				} `yaml:"behavior"`
			} `yaml:"horizontalPodAutoscalerConfig"`
		} `yaml:"advanced"`
		Triggers []struct {
			Type              string            `yaml:"type"`
			MetricType        string            `yaml:"metricType"`
			Metadata          map[string]string `yaml:"metadata"`
			AuthenticationRef *struct {
				Name string `yaml:"name"`
			} `yaml:"authenticationRef"`
		} `yaml:"triggers"`
	} `yaml:"spec"`
}

type hpaRules struct {
	StabilizationWindowSeconds *int `yaml:"stabilizationWindowSeconds"`
	Policies                   []struct {
		Type          string `yaml:"type"`
		Value         int    `yaml:"value"`
		PeriodSeconds int    `yaml:"periodSeconds"`
	} `yaml:"policies"`
}

type promPodMonitor struct {
	APIVersion string  `yaml:"apiVersion"`
	Kind       string  `yaml:"kind"`
	Metadata   k8sMeta `yaml:"metadata"`
	Spec       struct {
		JobLabel            string        `yaml:"jobLabel"`
		Selector            labelSelector `yaml:"selector"`
		PodMetricsEndpoints []struct {
			Port     string `yaml:"port"`
			Path     string `yaml:"path"`
			Interval string `yaml:"interval"`
		} `yaml:"podMetricsEndpoints"`
	} `yaml:"spec"`
}

type kustomization struct {
	APIVersion string   `yaml:"apiVersion"`
	Kind       string   `yaml:"kind"`
	Namespace  string   `yaml:"namespace"`
	Resources  []string `yaml:"resources"`
	Labels     []struct {
		Pairs            map[string]string `yaml:"pairs"`
		IncludeSelectors bool              `yaml:"includeSelectors"`
		IncludeTemplates bool              `yaml:"includeTemplates"`
	} `yaml:"labels"`
	Images []struct {
		Name    string `yaml:"name"`
		NewName string `yaml:"newName"`
		NewTag  string `yaml:"newTag"`
		Digest  string `yaml:"digest"`
	} `yaml:"images"`
}

// k8sKinds are the kinds the manifests may hold, with their API version and a
// decoder into the typed struct above.
var k8sKinds = map[string]struct {
	apiVersion string
	decode     func(n *yaml.Node, into *manifests) error
}{
	"Deployment":          {"apps/v1", func(n *yaml.Node, m *manifests) error { return strictDecode(n, &m.deployment) }},
	"ConfigMap":           {"v1", func(n *yaml.Node, m *manifests) error { return strictDecode(n, &m.configMap) }},
	"Secret":              {"v1", func(n *yaml.Node, m *manifests) error { return strictDecode(n, &m.secret) }},
	"ServiceAccount":      {"v1", func(n *yaml.Node, m *manifests) error { return strictDecode(n, &m.serviceAccount) }},
	"PodDisruptionBudget": {"policy/v1", func(n *yaml.Node, m *manifests) error { return strictDecode(n, &m.pdb) }},
	"ScaledObject":        {"keda.sh/v1alpha1", func(n *yaml.Node, m *manifests) error { return strictDecode(n, &m.scaledObject) }},
	"PodMonitor":          {"monitoring.coreos.com/v1", func(n *yaml.Node, m *manifests) error { return strictDecode(n, &m.podMonitor) }},
}

// manifests are the documents of deploy/kubernetes, one of each kind.
type manifests struct {
	kustomization  kustomization
	deployment     k8sDeployment
	configMap      k8sConfigMap
	secret         k8sSecret
	serviceAccount k8sServiceAccount
	pdb            k8sPDB
	scaledObject   kedaScaledObject
	podMonitor     promPodMonitor
	fileOf         map[string]string // kind → file
}

// strictDecode decodes a node, failing on keys the target type does not have.
func strictDecode(n *yaml.Node, into any) error {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	if err := enc.Encode(n); err != nil {
		return err
	}
	dec := yaml.NewDecoder(&buf)
	dec.KnownFields(true)
	return dec.Decode(into)
}

var dns1123 = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// loadManifests reads every YAML file of deploy/kubernetes.
func loadManifests(t *testing.T) *manifests {
	t.Helper()
	m := &manifests{fileOf: map[string]string{}}
	files, err := filepath.Glob(filepath.Join(k8sDir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no YAML files in %s (%v)", k8sDir, err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if filepath.Base(f) == "kustomization.yaml" {
			dec := yaml.NewDecoder(bytes.NewReader(data))
			dec.KnownFields(true)
			if err := dec.Decode(&m.kustomization); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			continue
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		for i := 0; ; i++ {
			var n yaml.Node
			if err := dec.Decode(&n); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: document %d: %v", f, i+1, err)
			}
			var head struct {
				APIVersion string  `yaml:"apiVersion"`
				Kind       string  `yaml:"kind"`
				Metadata   k8sMeta `yaml:"metadata"`
			}
			if err := n.Decode(&head); err != nil {
				t.Fatalf("%s: document %d: %v", f, i+1, err)
			}
			kind, ok := k8sKinds[head.Kind]
			switch {
			case !ok:
				t.Fatalf("%s: kind %q is not one this test knows (%v); add it to k8sKinds", f, head.Kind, sortedKeys(k8sKinds))
			case head.APIVersion != kind.apiVersion:
				t.Errorf("%s: %s has apiVersion %q, want %q", f, head.Kind, head.APIVersion, kind.apiVersion)
			case m.fileOf[head.Kind] != "":
				t.Fatalf("%s: a second %s (the first is in %s)", f, head.Kind, m.fileOf[head.Kind])
			}
			if !dns1123.MatchString(head.Metadata.Name) || len(head.Metadata.Name) > 63 {
				t.Errorf("%s: %s name %q is not a DNS-1123 label", f, head.Kind, head.Metadata.Name)
			}
			if head.Metadata.Namespace != "" {
				t.Errorf("%s: %s %s sets namespace %q; leave it to `kubectl -n` so the manifests install anywhere", f, head.Kind, head.Metadata.Name, head.Metadata.Namespace)
			}
			if err := kind.decode(&n, m); err != nil {
				t.Fatalf("%s: %s: %v\n(an unknown field is either a typo or a key this test does not know yet: add it to the type)", f, head.Kind, err)
			}
			m.fileOf[head.Kind] = filepath.Base(f)
		}
	}
	for _, kind := range []string{"Deployment", "ConfigMap", "Secret", "ServiceAccount", "PodDisruptionBudget", "ScaledObject", "PodMonitor"} {
		if m.fileOf[kind] == "" {
			t.Fatalf("%s holds no %s", k8sDir, kind)
		}
	}
	return m
}

func TestKubernetesKustomization(t *testing.T) {
	m := loadManifests(t)
	k := m.kustomization
	if k.APIVersion != "kustomize.config.k8s.io/v1beta1" || k.Kind != "Kustomization" {
		t.Errorf("kustomization.yaml: %s/%s, want kustomize.config.k8s.io/v1beta1 Kustomization", k.APIVersion, k.Kind)
	}
	for _, l := range k.Labels {
		if l.IncludeSelectors {
			t.Errorf("kustomization.yaml: labels %v go into selectors, which must never change on a live Deployment", l.Pairs)
		}
	}
	listed := map[string]bool{}
	for _, r := range k.Resources {
		listed[r] = true
		if _, err := os.Stat(filepath.Join(k8sDir, r)); err != nil {
			t.Errorf("kustomization.yaml lists %s: %v", r, err)
		}
	}
	// Everything but the Secret's placeholder and the operator-only PodMonitor is applied.
	for kind, file := range m.fileOf {
		switch kind {
		case "Secret":
			if listed[file] {
				t.Errorf("kustomization.yaml applies %s: a placeholder token would overwrite the real one on every apply", file)
			}
		case "PodMonitor":
		default:
			if !listed[file] {
				t.Errorf("kustomization.yaml does not list %s (%s)", file, kind)
			}
		}
	}
	image := m.mainContainer(t).Image
	repo, tag := splitImage(image)
	found := false
	for _, img := range k.Images {
		if img.Name == repo {
			found = true
			if img.NewTag == "" && img.Digest == "" {
				t.Errorf("kustomization.yaml: image %s has neither newTag nor digest", img.Name)
			}
			if img.NewTag == "latest" {
				t.Errorf("kustomization.yaml: image %s: tag latest; pin a released tag or digest", img.Name)
			}
		}
	}
	if !found {
		t.Errorf("kustomization.yaml: no images entry for %s, the Deployment's image; the released tag cannot be set", repo)
	}
	if tag == "" || tag == "latest" {
		t.Errorf("%s: image %q has no pinned tag", m.fileOf["Deployment"], image)
	}
}

// splitImage splits repo[:tag][@digest] into the repository and the tag.
func splitImage(image string) (repo, tag string) {
	image, _, _ = strings.Cut(image, "@")
	if i := strings.LastIndex(image, ":"); i > strings.LastIndex(image, "/") {
		return image[:i], image[i+1:]
	}
	return image, ""
}

func (m *manifests) mainContainer(t *testing.T) *k8sContainer {
	t.Helper()
	cs := m.deployment.Spec.Template.Spec.Containers
	if len(cs) != 1 {
		t.Fatalf("%s: %d containers, want the provisioner alone", m.fileOf["Deployment"], len(cs))
	}
	return &cs[0]
}

// runEnv is the environment `provisioner run` sees in the pod: the ConfigMap's
// data, then the container's own env (which wins). Values from Secrets are
// marked secretValue.
func (m *manifests) runEnv(t *testing.T) map[string]string {
	t.Helper()
	c := m.mainContainer(t)
	env := map[string]string{}
	for _, ef := range c.EnvFrom {
		switch {
		case ef.ConfigMapRef != nil:
			if ef.ConfigMapRef.Name != m.configMap.Metadata.Name {
				t.Errorf("%s: envFrom ConfigMap %q, but the ConfigMap is %q", m.fileOf["Deployment"], ef.ConfigMapRef.Name, m.configMap.Metadata.Name)
			}
			for k, v := range m.configMap.Data {
				env[k] = v
			}
		case ef.SecretRef != nil:
			if ef.SecretRef.Name != m.secret.Metadata.Name {
				t.Errorf("%s: envFrom Secret %q, but the Secret is %q", m.fileOf["Deployment"], ef.SecretRef.Name, m.secret.Metadata.Name)
			}
			for k := range m.secret.StringData {
				env[k] = secretValue
			}
		}
	}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = e.Value
		case e.ValueFrom.SecretKeyRef != nil:
			m.checkSecretKey(t, *e.ValueFrom.SecretKeyRef, "env "+e.Name)
			env[e.Name] = secretValue
		case e.ValueFrom.ConfigMapKeyRef != nil:
			ref := e.ValueFrom.ConfigMapKeyRef
			if ref.Name != m.configMap.Metadata.Name || m.configMap.Data[ref.Key] == "" {
				t.Errorf("%s: env %s from ConfigMap %s key %s, which does not exist", m.fileOf["Deployment"], e.Name, ref.Name, ref.Key)
			}
			env[e.Name] = m.configMap.Data[ref.Key]
		case e.ValueFrom.FieldRef != nil:
			// The downward API: only the pod's name is a stable, valid group instance id.
			if e.ValueFrom.FieldRef.FieldPath != "metadata.name" {
				t.Errorf("%s: env %s from field %s; only metadata.name is expected", m.fileOf["Deployment"], e.Name, e.ValueFrom.FieldRef.FieldPath)
			}
			env[e.Name] = "wholesale-provisioner-7d9f8b6c5-x2x4q"
		}
	}
	return env
}

const secretValue = "(from the Secret)"

func (m *manifests) checkSecretKey(t *testing.T, ref keyRef, where string) {
	t.Helper()
	if ref.Name != m.secret.Metadata.Name {
		t.Errorf("%s: %s reads Secret %q; the Secret (%s) is %q", m.fileOf["Deployment"], where, ref.Name, m.fileOf["Secret"], m.secret.Metadata.Name)
		return
	}
	if _, ok := m.secret.StringData[ref.Key]; !ok {
		if _, ok := m.secret.Data[ref.Key]; !ok {
			t.Errorf("%s: %s reads key %q of Secret %s, which has %v", m.fileOf["Deployment"], where, ref.Key, ref.Name, sortedKeys(m.secret.StringData))
		}
	}
}

// httpPort is the port of the container's --http-addr, and whether the address
// listens on every interface (the kubelet probes the pod's IP).
func httpPort(t *testing.T, env map[string]string) (port int, allInterfaces bool) {
	t.Helper()
	run := usageOf(t, "run")
	addr := env[run.flags["http-addr"].env]
	if addr == "" {
		addr = run.flags["http-addr"].def
	}
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("--http-addr %q: %v", addr, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil || n <= 0 {
		t.Fatalf("--http-addr %q: port %q", addr, p)
	}
	return n, host == "" || host == "0.0.0.0" || host == "::"
}

func TestKubernetesDeployment(t *testing.T) {
	m := loadManifests(t)
	d := m.deployment
	file := m.fileOf["Deployment"]
	c := m.mainContainer(t)
	pod := d.Spec.Template.Spec

	if d.Spec.Replicas != nil {
		t.Errorf("%s: spec.replicas is set (%d): the ScaledObject's HPA owns the replica count, and every apply would reset it", file, *d.Spec.Replicas)
	}
	sel := d.Spec.Selector.MatchLabels
	if len(sel) == 0 {
		t.Fatalf("%s: no selector.matchLabels", file)
	}
	for k, v := range sel {
		if d.Spec.Template.Metadata.Labels[k] != v {
			t.Errorf("%s: selector %s=%s does not match the pod template's labels %v", file, k, v, d.Spec.Template.Metadata.Labels)
		}
	}

	// The command: the image's entrypoint is the binary, `run` its subcommand.
	if len(c.Command) != 0 {
		t.Errorf("%s: command %q replaces the image's ENTRYPOINT (the binary); use args", file, c.Command)
	}
	if len(c.Args) == 0 || c.Args[0] != "run" {
		t.Errorf("%s: args %q, want [run]", file, c.Args)
	}
	run := usageOf(t, "run")
	for _, a := range c.Args[min(1, len(c.Args)):] {
		if name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "="); strings.HasPrefix(a, "-") {
			if _, ok := run.flags[name]; !ok {
				t.Errorf("%s: `provisioner run` has no flag --%s", file, name)
			}
		}
	}

	// Every PROVISIONER_* variable is one the binary reads; the token never in plain text.
	env := m.runEnv(t)
	for _, k := range sortedKeys(env) {
		if !strings.HasPrefix(k, "PROVISIONER_") {
			continue
		}
		if !run.envs[k] {
			t.Errorf("%s/%s: %s is not a variable of `provisioner run` (see its --help), so it is ignored", file, m.fileOf["ConfigMap"], k)
		}
	}
	for k := range m.configMap.Data {
		if !strings.HasPrefix(k, "PROVISIONER_") {
			t.Errorf("%s: key %s is not a PROVISIONER_* variable", m.fileOf["ConfigMap"], k)
		}
	}
	if v, ok := env["PROVISIONER_WEBEX_TOKEN"]; ok && v != secretValue {
		t.Errorf("%s: PROVISIONER_WEBEX_TOKEN is set in plain text; it belongs in the Secret", file)
	}

	// The token file is a key of the Secret, mounted read-only.
	tokenFile := env[run.flags["webex-token-file"].env]
	if tokenFile == "" && env["PROVISIONER_WEBEX_TOKEN"] != secretValue {
		t.Fatalf("%s: no Webex token: set PROVISIONER_WEBEX_TOKEN_FILE to a file of the mounted Secret", file)
	}
	if tokenFile != "" {
		m.checkSecretFile(t, c, tokenFile)
	}

	// The configuration passes the binary's own validation.
	cfg := validateRunEnv(t, file+" + "+m.fileOf["ConfigMap"], env)

	// Port, probes, scrape annotations.
	port, all := httpPort(t, env)
	if !all {
		t.Errorf("%s: --http-addr listens on one interface only; the kubelet probes the pod IP: use :%d", file, port)
	}
	portName := ""
	for _, p := range c.Ports {
		if p.ContainerPort == port {
			portName = p.Name
		}
	}
	if portName == "" {
		t.Errorf("%s: no containerPort %d (the port of --http-addr); ports %+v", file, port, c.Ports)
	}
	for _, pr := range []struct {
		name, path string
		probe      *k8sProbe
	}{{"livenessProbe", "/healthz", c.LivenessProbe}, {"readinessProbe", "/readyz", c.ReadinessProbe}} {
		switch {
		case pr.probe == nil || pr.probe.HTTPGet == nil:
			t.Errorf("%s: no %s httpGet %s", file, pr.name, pr.path)
		case pr.probe.HTTPGet.Path != pr.path:
			t.Errorf("%s: %s path %q, want %s", file, pr.name, pr.probe.HTTPGet.Path, pr.path)
		case fmt.Sprint(pr.probe.HTTPGet.Port) != strconv.Itoa(port) && (portName == "" || pr.probe.HTTPGet.Port != portName):
			t.Errorf("%s: %s port %v, want %d (or its name %q): the port of --http-addr", file, pr.name, pr.probe.HTTPGet.Port, port, portName)
		}
	}
	ann := d.Spec.Template.Metadata.Annotations
	if ann["prometheus.io/scrape"] == "true" && (ann["prometheus.io/port"] != strconv.Itoa(port) || ann["prometheus.io/path"] != "/metrics") {
		t.Errorf("%s: prometheus.io annotations %v, want port %d and path /metrics", file, ann, port)
	}

	// Graceful shutdown fits in the grace period.
	grace := 30 // Kubernetes' default
	if pod.TerminationGracePeriodSeconds != nil {
		grace = *pod.TerminationGracePeriodSeconds
	}
	if need := cfg.Consumer.ShutdownTimeout + 10*time.Second; time.Duration(grace)*time.Second < need {
		t.Errorf("%s: terminationGracePeriodSeconds %d is shorter than --shutdown-timeout (%s) plus 10s for the last commit and writer close",
			file, grace, cfg.Consumer.ShutdownTimeout)
	}

	// Resources.
	for _, r := range []string{"cpu", "memory"} {
		if c.Resources.Requests[r] == "" {
			t.Errorf("%s: no resources.requests.%s", file, r)
		}
	}
	if c.Resources.Limits["memory"] == "" {
		t.Errorf("%s: no resources.limits.memory", file)
	}

	// Security: the Dockerfile's non-root user, nothing writable, no privileges.
	uid := dockerfileUID(t)
	sc := pod.SecurityContext
	if sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		t.Errorf("%s: securityContext.runAsNonRoot is not true", file)
	}
	if sc.RunAsUser == nil || *sc.RunAsUser != uid {
		t.Errorf("%s: securityContext.runAsUser is not %d (USER of %s)", file, uid, dockerfilePath)
	}
	csc := c.SecurityContext
	if csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation {
		t.Errorf("%s: allowPrivilegeEscalation is not false", file)
	}
	if csc.ReadOnlyRootFilesystem == nil || !*csc.ReadOnlyRootFilesystem {
		t.Errorf("%s: readOnlyRootFilesystem is not true (the binary writes nothing)", file)
	}
	if !slices.Contains(csc.Capabilities.Drop, "ALL") {
		t.Errorf("%s: capabilities.drop lacks ALL", file)
	}
	if pod.ServiceAccountName != m.serviceAccount.Metadata.Name {
		t.Errorf("%s: serviceAccountName %q, want %q (%s)", file, pod.ServiceAccountName, m.serviceAccount.Metadata.Name, m.fileOf["ServiceAccount"])
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Errorf("%s: automountServiceAccountToken is not false; the provisioner does not talk to the Kubernetes API", file)
	}
}

// checkSecretFile checks that file is a key of the Secret, mounted read-only.
func (m *manifests) checkSecretFile(t *testing.T, c *k8sContainer, file string) {
	t.Helper()
	dfile := m.fileOf["Deployment"]
	for _, vm := range c.VolumeMounts {
		rel, err := filepath.Rel(vm.MountPath, file)
		if err != nil || strings.HasPrefix(rel, "..") || rel == "." {
			continue
		}
		if !vm.ReadOnly {
			t.Errorf("%s: volume %s at %s is not readOnly", dfile, vm.Name, vm.MountPath)
		}
		if vm.SubPath != "" {
			t.Errorf("%s: volume %s is mounted with subPath, so a rotated token never reaches the pod", dfile, vm.Name)
		}
		for _, v := range m.deployment.Spec.Template.Spec.Volumes {
			if v.Name != vm.Name {
				continue
			}
			if v.Secret == nil {
				t.Fatalf("%s: %s is on volume %s, which is not a Secret", dfile, file, v.Name)
			}
			if v.Secret.Optional != nil && *v.Secret.Optional {
				t.Errorf("%s: the Secret volume %s is optional: a missing token should stop the pod from starting", dfile, v.Name)
			}
			key, listed := rel, len(v.Secret.Items) == 0
			for _, it := range v.Secret.Items {
				if it.Path == rel {
					key, listed = it.Key, true
				}
			}
			if !listed {
				t.Errorf("%s: %s is not one of the items of Secret volume %s", dfile, file, v.Name)
			}
			m.checkSecretKey(t, keyRef{Name: v.Secret.SecretName, Key: key}, "the token file "+file)
			return
		}
		t.Fatalf("%s: volumeMount %s has no volume", dfile, vm.Name)
	}
	t.Errorf("%s: the token file %s is on no volume mount", dfile, file)
}

// validateRunEnv checks env as `provisioner run` would: each PROVISIONER_*
// variable sets its flag, then the configuration is validated. A token file
// from a Secret is replaced by a temporary one.
func validateRunEnv(t *testing.T, where string, env map[string]string) app.Config {
	t.Helper()
	cfg := app.DefaultConfig()
	cfg.HTTPAddr = usageOf(t, "run").flags["http-addr"].def
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	finish := app.BindRunFlags(fs, &cfg)
	byEnv := map[string]string{}
	fs.VisitAll(func(f *flag.Flag) { byEnv[app.EnvName(f.Name)] = f.Name })
	for _, k := range sortedKeys(env) {
		v := env[k]
		switch {
		case k == app.EnvName("webex-token"):
			cfg.WebexToken = v
		case byEnv[k] != "" && v != "":
			if k == app.EnvName("webex-token-file") {
				tmp := filepath.Join(t.TempDir(), "token")
				if err := os.WriteFile(tmp, []byte("t0k3n\n"), 0o600); err != nil {
					t.Fatal(err)
				}
				v = tmp
			}
			if err := fs.Set(byEnv[k], v); err != nil {
				t.Errorf("%s: %s=%q: %v", where, k, v, err)
			}
		}
	}
	finish()
	if err := cfg.Validate(); err != nil {
		t.Errorf("%s: `provisioner run` would refuse this configuration: %v", where, err)
	}
	return cfg
}

// dockerfileUID is the numeric user of the Dockerfile's final stage.
func dockerfileUID(t *testing.T) int64 {
	t.Helper()
	data, err := os.ReadFile(dockerfilePath)
	if err != nil {
		t.Fatal(err)
	}
	stages := parseDockerfile(t, data)
	user := ""
	for _, in := range stages[len(stages)-1].instrs {
		if in.cmd == "USER" {
			user = in.args
		}
	}
	name, _, _ := strings.Cut(user, ":")
	uid, err := strconv.ParseInt(name, 10, 64)
	if err != nil {
		t.Fatalf("%s: USER %q is not numeric; Kubernetes' runAsNonRoot needs a numeric user", dockerfilePath, user)
	}
	return uid
}

func TestKubernetesSecret(t *testing.T) {
	m := loadManifests(t)
	s := m.secret
	if s.Type != "Opaque" {
		t.Errorf("%s: type %q, want Opaque", m.fileOf["Secret"], s.Type)
	}
	for k, v := range s.StringData {
		if !strings.Contains(v, "REPLACE") {
			t.Errorf("%s: key %s holds %q; an example Secret holds only placeholders (REPLACE...)", m.fileOf["Secret"], k, v)
		}
	}
	if len(s.Data) > 0 {
		t.Errorf("%s: data holds base64 values; use stringData placeholders", m.fileOf["Secret"])
	}
	// The marked place for the Kafka credentials to come.
	for _, f := range []string{m.fileOf["Secret"], m.fileOf["Deployment"]} {
		data, err := os.ReadFile(filepath.Join(k8sDir, f))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(data), "Kafka TLS/SASL: TO COME") {
			t.Errorf("%s: no \"Kafka TLS/SASL: TO COME\" block marking where the Kafka credentials go", f)
		}
	}
}

func TestKubernetesPodDisruptionBudget(t *testing.T) {
	m := loadManifests(t)
	p := m.pdb
	file := m.fileOf["PodDisruptionBudget"]
	if !maps(p.Spec.Selector.MatchLabels, m.deployment.Spec.Selector.MatchLabels) {
		t.Errorf("%s: selector %v differs from the Deployment's %v", file, p.Spec.Selector.MatchLabels, m.deployment.Spec.Selector.MatchLabels)
	}
	for k, v := range p.Spec.Selector.MatchLabels {
		if m.deployment.Spec.Template.Metadata.Labels[k] != v {
			t.Errorf("%s: selector %s=%s matches no provisioner pod (labels %v)", file, k, v, m.deployment.Spec.Template.Metadata.Labels)
		}
	}
	switch {
	case (p.Spec.MinAvailable == nil) == (p.Spec.MaxUnavailable == nil):
		t.Errorf("%s: set exactly one of minAvailable and maxUnavailable", file)
	case p.Spec.MaxUnavailable != nil:
		if n, ok := p.Spec.MaxUnavailable.(int); ok && n < 1 {
			t.Errorf("%s: maxUnavailable %d blocks every drain", file, n)
		}
	case p.Spec.MinAvailable != nil:
		// With one replica (KEDA's minimum), minAvailable ≥ 1 blocks every drain.
		if n, ok := p.Spec.MinAvailable.(int); ok && m.scaledObject.Spec.MinReplicaCount != nil && n >= *m.scaledObject.Spec.MinReplicaCount {
			t.Errorf("%s: minAvailable %d with minReplicaCount %d blocks node drains", file, n, *m.scaledObject.Spec.MinReplicaCount)
		}
	}
}

func maps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// ordersPartitions is the partition count docker-compose.yml's kafka-init
// gives the orders topic (the reference for the deployment's topic).
func ordersPartitions(t *testing.T, topic string) int {
	t.Helper()
	cf := loadCompose(t)
	created := createdTopics(t, mustService(t, cf, "kafka-init"))
	c, ok := created[topic]
	if !ok {
		t.Fatalf("docker-compose.yml's kafka-init does not create %q, the orders topic of the Kubernetes ConfigMap (it creates %v)", topic, sortedKeys(created))
	}
	n, err := strconv.Atoi(c.partitions)
	if err != nil {
		t.Fatalf("kafka-init: --partitions %q of %s", c.partitions, topic)
	}
	return n
}

// kedaQuery returns the ScaledObject's Prometheus query.
func kedaQuery(t *testing.T, m *manifests) string {
	t.Helper()
	for _, tr := range m.scaledObject.Spec.Triggers {
		if tr.Type == "prometheus" {
			return tr.Metadata["query"]
		}
	}
	t.Fatalf("%s: no prometheus trigger", m.fileOf["ScaledObject"])
	return ""
}

func TestKubernetesScaledObject(t *testing.T) {
	m := loadManifests(t)
	so := m.scaledObject.Spec
	file := m.fileOf["ScaledObject"]
	ref := so.ScaleTargetRef
	if ref.Name != m.deployment.Metadata.Name || (ref.Kind != "" && ref.Kind != "Deployment") || (ref.APIVersion != "" && ref.APIVersion != "apps/v1") {
		t.Errorf("%s: scaleTargetRef %+v, want the Deployment %s", file, ref, m.deployment.Metadata.Name)
	}
	env := m.runEnv(t)
	run := usageOf(t, "run")
	topic := env[run.flags["orders-topic"].env]
	if topic == "" {
		topic = run.flags["orders-topic"].def
	}
	partitions := ordersPartitions(t, topic)
	if so.MinReplicaCount == nil || *so.MinReplicaCount != 1 {
		t.Errorf("%s: minReplicaCount %s, want 1", file, intOrUnset(so.MinReplicaCount))
	}
	if so.MaxReplicaCount == nil || *so.MaxReplicaCount != partitions {
		t.Errorf("%s: maxReplicaCount %s, want %d, the partition count of %s (docker-compose.yml's kafka-init): more consumers than partitions sit idle", file, intOrUnset(so.MaxReplicaCount), partitions, topic)
	}
	if f := so.Fallback; f != nil && (f.Replicas < 1 || f.Replicas > partitions || f.FailureThreshold < 1) {
		t.Errorf("%s: fallback %+v, want 1..%d replicas after at least one failure", file, *f, partitions)
	}
	if len(so.Triggers) != 1 {
		t.Fatalf("%s: %d triggers, want the one on consumer lag", file, len(so.Triggers))
	}
	tr := so.Triggers[0]
	if tr.Type != "prometheus" {
		t.Fatalf("%s: trigger type %q; this test knows the prometheus trigger (see the file's comment)", file, tr.Type)
	}
	if so.Fallback != nil && tr.MetricType != "AverageValue" {
		t.Errorf("%s: metricType %q; KEDA's fallback needs AverageValue", file, tr.MetricType)
	}
	if u, err := url.Parse(tr.Metadata["serverAddress"]); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		t.Errorf("%s: serverAddress %q is not an http(s) URL", file, tr.Metadata["serverAddress"])
	}
	if v, err := strconv.ParseFloat(tr.Metadata["threshold"], 64); err != nil || v <= 0 {
		t.Errorf("%s: threshold %q, want a positive number", file, tr.Metadata["threshold"])
	}
	for k := range tr.Metadata {
		if !slices.Contains([]string{"serverAddress", "query", "threshold", "activationThreshold", "ignoreNullValues", "namespace", "unsafeSsl", "timeout", "queryParameters", "customHeaders"}, k) {
			t.Errorf("%s: prometheus trigger metadata %q is not one KEDA's prometheus scaler reads", file, k)
		}
	}
	refs, err := promqlMetricRefs(tr.Metadata["query"])
	if err != nil {
		t.Fatalf("%s: query: %v", file, err)
	}
	onLag := false
	for _, r := range refs {
		if r.name == "provisioner_consumer_lag_records" {
			onLag = true
			if !strings.Contains(r.matchers, fmt.Sprintf("topic=%q", topic)) {
				t.Errorf("%s: the query selects lag of {%s}, want topic=%q (the ConfigMap's orders topic)", file, r.matchers, topic)
			}
		}
	}
	if !onLag {
		t.Errorf("%s: the query %q does not use provisioner_consumer_lag_records", file, tr.Metadata["query"])
	}
	if !strings.Contains(tr.Metadata["query"], "max without (instance, pod)") && !strings.Contains(tr.Metadata["query"], "max by (") {
		t.Errorf("%s: the query does not de-duplicate the lag that every instance reports (max without (instance, pod))", file)
	}
}

func intOrUnset(p *int) string {
	if p == nil {
		return "unset"
	}
	return strconv.Itoa(*p)
}

func TestKubernetesPodMonitor(t *testing.T) {
	m := loadManifests(t)
	pm := m.podMonitor.Spec
	file := m.fileOf["PodMonitor"]
	labels := m.deployment.Spec.Template.Metadata.Labels
	for k, v := range pm.Selector.MatchLabels {
		if labels[k] != v {
			t.Errorf("%s: selector %s=%s matches no provisioner pod (labels %v)", file, k, v, labels)
		}
	}
	c := m.mainContainer(t)
	port, _ := httpPort(t, m.runEnv(t))
	for _, ep := range pm.PodMetricsEndpoints {
		ok := false
		for _, p := range c.Ports {
			ok = ok || p.Name == ep.Port && p.ContainerPort == port
		}
		if !ok {
			t.Errorf("%s: endpoint port %q is not the container's --http-addr port (%d) by name", file, ep.Port, port)
		}
		if ep.Path != "" && ep.Path != "/metrics" {
			t.Errorf("%s: path %q, want /metrics", file, ep.Path)
		}
	}
	if job := labels[pm.JobLabel]; job != alertsJob(t) {
		t.Errorf("%s: jobLabel %q gives job %q; the alerts look for job %q", file, pm.JobLabel, job, alertsJob(t))
	}
}

// alertsJob is the scrape job name the alerts' up{job=...} selector names.
func alertsJob(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(alertsPath)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`up\{job="([^"]+)"\}`).FindSubmatch(data)
	if m == nil {
		t.Fatalf("%s: no up{job=\"...\"} selector", alertsPath)
	}
	return string(m[1])
}
