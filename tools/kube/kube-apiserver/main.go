// Command kube-apiserver is a thin wrapper that builds the upstream
// kube-apiserver at the version pinned in go.mod (see ../README.md and
// scripts/kube-tools.sh). It exists only because `go install` cannot build
// k8s.io/kubernetes (replace directives); it mirrors upstream's
// cmd/kube-apiserver entry point and adds no behaviour of its own.
package main

import (
	"os"
	_ "time/tzdata" // time zone data, as upstream embeds it

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"          // --logging-format=json
	_ "k8s.io/component-base/metrics/prometheus/clientgo" // client-go metrics
	_ "k8s.io/component-base/metrics/prometheus/version"  // version metric
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	os.Exit(cli.Run(app.NewAPIServerCommand()))
}
