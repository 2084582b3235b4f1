// Wrapper module that builds np-guard's netpol-analyzer CLI (netpolicy) for
// network-policy reachability checks. `go install ...@v1.4.2` cannot be used
// here: the module proxy refuses the module's version list (go install reads it
// for deprecation notices) and the checksum-database mirror has no entries for
// github.com/np-guard/*. go.sum below was therefore recorded once with
// GONOSUMDB=github.com/np-guard (see ../README.md); builds verify against it.
module safezone.local/tools/kube/netpolicy

go 1.23.0

require github.com/np-guard/netpol-analyzer v1.4.2
