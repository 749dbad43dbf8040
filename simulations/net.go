package simulations

import (
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	libp2pquic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/quicreuse"
	"github.com/marcopolo/simnet"
	"github.com/quic-go/quic-go"
	"go.uber.org/fx"

	"github.com/cocoon-mesh/cocoon/node/p2phost"
)

// The simulated internet: every node has an address of its own on simnet, in a region whose
// latency to every other region and whose bandwidth the scenario gives, and a link that can be
// cut (a crash: its packets vanish, as a killed machine's would, instead of the goodbyes a
// closing host sends).

// world is the simulated network and where each address sits.
type world struct {
	net     *simnet.Simnet
	regions []Region
	latency [][]time.Duration // one way, by region index

	mu     sync.RWMutex
	region map[[4]byte]int // by IPv4 address
	next   int             // the next address to hand out
}

// newWorld starts a network of sc's regions.
func newWorld(sc *Scenario) *world {
	w := &world{regions: sc.Regions, region: map[[4]byte]int{}}
	w.latency = make([][]time.Duration, len(sc.Regions))
	for i, r := range sc.Regions {
		w.latency[i] = make([]time.Duration, len(sc.Regions))
		for j, o := range sc.Regions {
			w.latency[i][j] = r.Latency[o.Name].Duration
		}
	}
	w.net = &simnet.Simnet{LatencyFunc: w.delay, Logger: discardLogger()}
	w.net.Start()
	return w
}

// delay is a packet's one-way latency: its regions'.
func (w *world) delay(p *simnet.Packet) time.Duration {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return w.latency[w.regionOf(p.From)][w.regionOf(p.To)]
}

func (w *world) regionOf(a net.Addr) int {
	if u, ok := a.(*net.UDPAddr); ok {
		if ip4 := u.IP.To4(); ip4 != nil {
			return w.region[[4]byte(ip4)]
		}
	}
	return 0
}

// close stops the network's goroutines.
func (w *world) close() { w.net.Close() }

// link is one node's attachment to the network.
type link struct {
	ip   net.IP
	conn atomic.Pointer[cutConn] // set once the host listens
}

// cut drops the node off the network: nothing it sends arrives, nothing sent to it is read.
func (l *link) cut() {
	if c := l.conn.Load(); c != nil {
		c.dead.Store(true)
	}
}

// newHost makes a libp2p host with key in region r, as a real node's (p2phost), with QUIC over
// the simulated network in place of this machine's sockets. Its address is ip, or a new one
// when ip is nil (a restarted node keeps its address).
func (w *world) newHost(key crypto.PrivKey, r int, ip net.IP) (host.Host, *link, error) {
	w.mu.Lock()
	if ip == nil {
		ip = simnet.IntToPublicIPv4(w.next)
		w.next++
	}
	w.region[[4]byte(ip.To4())] = r
	w.mu.Unlock()
	l := &link{ip: ip}
	bw := int(w.regions[r].BandwidthMbps * 1e6)
	settings := simnet.NodeBiDiLinkSettings{Downlink: simnet.LinkSettings{BitsPerSecond: bw}, Uplink: simnet.LinkSettings{BitsPerSecond: bw}}
	src := &sourceIP{ip: ip}
	reuse := []quicreuse.Option{
		quicreuse.OverrideSourceIPSelector(func() (quicreuse.SourceIPSelector, error) { return src, nil }),
		quicreuse.OverrideListenUDP(func(_ string, addr *net.UDPAddr) (net.PacketConn, error) {
			c := &cutConn{SimConn: w.net.NewEndpoint(addr, settings)}
			l.conn.Store(c)
			return c, nil
		}),
	}
	hc := p2phost.DefaultConfig()
	hc.ConnsLow, hc.ConnsHigh = 600, 1000
	hc.Listen = []string{fmt.Sprintf("/ip4/%s/udp/8000/quic-v1", ip)}
	hc.Transports = []libp2p.Option{
		libp2p.Transport(libp2pquic.NewTransport),
		libp2p.QUICReuse(newReuse, reuse...),
		// Address discovery through identify stalls a synctest bubble (go-libp2p's simlibp2p
		// turns it off too); every address here is public, so nothing is lost.
		libp2p.DisableIdentifyAddressDiscovery(),
	}
	h, err := p2phost.New(hc, key, nil)
	if err != nil {
		return nil, nil, err
	}
	return h, l, nil
}

// newReuse builds the QUIC connection manager and closes it with the host (as simlibp2p
// does: libp2p leaves one it was given open).
func newReuse(lc fx.Lifecycle, reset quic.StatelessResetKey, token quic.TokenGeneratorKey, opts ...quicreuse.Option) (*quicreuse.ConnManager, error) {
	cm, err := quicreuse.NewConnManager(reset, token, opts...)
	if err != nil {
		return nil, err
	}
	lc.Append(fx.StopHook(cm.Close))
	return cm, nil
}

// sourceIP is the one address a simulated node sends from.
type sourceIP struct{ ip net.IP }

func (s *sourceIP) PreferredSourceIPForDestination(*net.UDPAddr) (net.IP, error) { return s.ip, nil }

// cutConn is a node's packet connection, which a crash cuts.
type cutConn struct {
	*simnet.SimConn
	dead atomic.Bool
}

// WriteTo sends p, unless the link is cut (then it is lost, and the sender cannot tell).
func (c *cutConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	if c.dead.Load() {
		return len(p), nil
	}
	return c.SimConn.WriteTo(p, addr)
}

// ReadFrom reads the next packet, throwing away what reaches a cut link.
func (c *cutConn) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		n, addr, err := c.SimConn.ReadFrom(p)
		if err != nil || !c.dead.Load() {
			return n, addr, err
		}
	}
}
