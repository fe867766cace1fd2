// kube-apiserver for policy-server's tests: the real API server (k8s.io/kubernetes), built from the Go module
// proxy with no other download. Not product code: the tests run it with etcd to watch, patch and admit real
// Kargo objects.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	command := app.NewAPIServerCommand()
	os.Exit(cli.Run(command))
}
