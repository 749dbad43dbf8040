package node

import "github.com/cocoon-mesh/cocoon/tee"

// ForgetSealSessions makes a worker drop every client's sealing session, as a restart of its
// session table would.
func ForgetSealSessions(n *Node) { n.attest.opener = tee.NewOpener(n.attest.opener.Key()) }
