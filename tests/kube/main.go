// Command kube-apiserver is upstream's cmd/kube-apiserver main, built from the pinned k8s.io/kubernetes
// module so gatekeeper's tests can run a real API server. Built by scripts/kube-apiserver.sh; never committed.
package main

import (
	"os"
	_ "time/tzdata" // CronJob time zones

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() { os.Exit(cli.Run(app.NewAPIServerCommand())) }
