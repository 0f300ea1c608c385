// Package deploy holds the deployment files and tests that check their
// structure without a container engine or a cluster:
//
//   - Dockerfile (and docker-compose.yml, .dockerignore at the repository root);
//   - prometheus/: the local stack's Prometheus configuration, the alert and
//     recording rules (alerts.yml) and their promtool unit tests;
//   - grafana/: the dashboard and the local stack's Grafana provisioning;
//   - kubernetes/: Deployment, ConfigMap, PodDisruptionBudget, KEDA
//     ScaledObject, PodMonitor and an example Secret (kustomize);
//   - e2e/: the same files checked against a real Prometheus and a real broker.
//
// The tests check the files against each other, against the binary's own flags
// and configuration validation, and against the metrics the service really
// exports after an in-process run.
package deploy
