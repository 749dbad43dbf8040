package p2phost

import (
	"errors"
	"fmt"
	"net"
	"syscall"

	ma "github.com/multiformats/go-multiaddr"
)

// checkFree refuses a listen address whose port another socket holds. libp2p's TCP listener
// sets SO_REUSEPORT (hole punching needs it), so a second node on a taken port would start
// without a word and share the port with the first, which gets its connections.
func checkFree(listen []string) error {
	for _, s := range listen {
		m, err := ma.NewMultiaddr(s)
		if err != nil {
			continue // libp2p refuses it, naming it
		}
		ip, err := m.ValueForProtocol(ma.P_IP4)
		if err != nil {
			if ip, err = m.ValueForProtocol(ma.P_IP6); err != nil {
				continue // a DNS name or no IP: nothing to bind here
			}
		}
		for _, p := range []struct {
			code  int
			bind  func(addr string) (interface{ Close() error }, error)
			proto string
		}{
			{ma.P_TCP, func(a string) (interface{ Close() error }, error) { return net.Listen("tcp", a) }, "TCP"},
			{ma.P_UDP, func(a string) (interface{ Close() error }, error) { return net.ListenPacket("udp", a) }, "UDP"},
		} {
			port, err := m.ValueForProtocol(p.code)
			if err != nil || port == "0" {
				continue
			}
			l, err := p.bind(net.JoinHostPort(ip, port))
			if errors.Is(err, syscall.EADDRINUSE) {
				return fmt.Errorf("listen address %s: %s port %s is taken (another node, or another program, uses it): stop it, or give this node another port (host.listen, --listen)", s, p.proto, port)
			}
			if err == nil {
				l.Close()
			}
		}
	}
	return nil
}
