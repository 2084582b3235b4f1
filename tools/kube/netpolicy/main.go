// Command netpolicy is a thin wrapper that builds np-guard's netpol-analyzer
// CLI at the version pinned in go.mod (see ../README.md and
// scripts/kube-tools.sh); it adds no behaviour of its own.
package main

import "github.com/np-guard/netpol-analyzer/pkg/cli"

func main() {
	cli.Execute()
}
