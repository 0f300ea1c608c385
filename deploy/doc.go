// Package deploy holds the deployment files (this Dockerfile; docker-compose.yml and .dockerignore at the
// repository root) and tests that check their structure without a container engine.
package deploy
