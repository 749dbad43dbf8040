//go:build !rogue

package main

import (
	"flag"

	"github.com/cocoon-mesh/cocoon/node"
)

// registerFaults adds no flags to a release binary: it never misbehaves on purpose (the
// adversarial tests build their rogue peers with -tags rogue, see faults_rogue.go).
func registerFaults(*flag.FlagSet) func() *node.Faults { return func() *node.Faults { return nil } }
