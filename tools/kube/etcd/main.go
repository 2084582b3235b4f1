// Command etcd is a thin wrapper that builds the upstream etcd server at the
// version pinned in go.mod (see ../README.md and scripts/kube-tools.sh).
// It exists only because `go install` cannot build etcd's own main module
// (it carries replace directives); it adds no behaviour of its own.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
