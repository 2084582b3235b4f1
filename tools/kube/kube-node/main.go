// Command kube-node is one binary for the upstream kubelet, kube-controller-manager,
// kube-scheduler and kube-proxy at the version pinned in go.mod (see ../README.md and
// scripts/kube-tools.sh). It is called through symlinks named after each component,
// as the former upstream hyperkube was: one link step instead of four, which saves
// minutes of CI on two cores. Each branch mirrors upstream's cmd/<component> entry
// point and adds no behaviour of its own.
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	_ "time/tzdata" // time zone data, as upstream embeds it (CronJob time zones)

	"github.com/spf13/cobra"
	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"          // --logging-format=json
	_ "k8s.io/component-base/metrics/prometheus/clientgo" // client-go metrics
	_ "k8s.io/component-base/metrics/prometheus/version"  // version metric
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	proxy "k8s.io/kubernetes/cmd/kube-proxy/app"
	scheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"
	kubelet "k8s.io/kubernetes/cmd/kubelet/app"
)

var components = map[string]func() *cobra.Command{
	"kubelet":                 func() *cobra.Command { return kubelet.NewKubeletCommand(context.Background()) },
	"kube-controller-manager": func() *cobra.Command { return controllermanager.NewControllerManagerCommand() },
	"kube-scheduler":          func() *cobra.Command { return scheduler.NewSchedulerCommand() },
	"kube-proxy":              func() *cobra.Command { return proxy.NewProxyCommand() },
}

func main() {
	name := filepath.Base(os.Args[0])
	command, ok := components[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "kube-node: call me through a symlink named kubelet, kube-controller-manager, kube-scheduler or kube-proxy (got %q)\n", name)
		os.Exit(2)
	}
	os.Exit(cli.Run(command()))
}
