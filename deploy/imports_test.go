package deploy

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/acme-sp/wholesale-provisioner"

// TestDependenciesPointOneWay: the formats (schemas) and the Webex workflow
// (provisioning) know nothing of Kafka reading or writing, and the consumer
// runs any handler without knowing the Webex side; internal/pipeline is the
// one place that joins them. The rule is checked on what `go list -deps`
// says each package really imports, tests left out.
func TestDependenciesPointOneWay(t *testing.T) {
	for _, tc := range []struct {
		pkg       string
		forbidden []string
	}{
		{"./provisioning/...", []string{"/consumer", "/producer", "/internal/pipeline", "/internal/app", "github.com/segmentio/kafka-go"}},
		{"./schemas/...", []string{"/consumer", "/producer", "/internal/pipeline", "/provisioning", "/internal/app", "github.com/segmentio/kafka-go"}},
		{"./consumer/...", []string{"/provisioning", "/schemas", "/internal/pipeline", "/producer"}},
		{"./producer/...", []string{"/provisioning", "/consumer", "/internal/pipeline"}},
	} {
		out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", "../"+strings.TrimPrefix(tc.pkg, "./")).CombinedOutput()
		if err != nil {
			t.Fatalf("go list %s: %v\n%s", tc.pkg, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			for _, f := range tc.forbidden {
				if dep == f || strings.HasPrefix(f, "/") && (dep == module+f || strings.HasPrefix(dep, module+f+"/")) {
					t.Errorf("%s depends on %s", tc.pkg, dep)
				}
			}
		}
	}
}
