// Package discovery finds proxies without a registry: proxies put provider records into a
// private Kademlia DHT under a key derived from the network name (and one key per model they
// serve), and clients and workers look those records up and stay connected to several proxies.
//
// The caller's loop (node does this for every role):
//
//	s, err := discovery.New(h, discovery.Config{Network: "mainnet", Bootstrap: peers})
//	defer s.Close()
//	s.Bootstrap(ctx)                                   // once; the DHT keeps retrying
//	go s.Advertise(ctx, models, retry, interval)        // a proxy: provide NetworkKey, ModelKey
//	k := s.NewKeeper(want, interval, onConnect); go k.Run(ctx) // clients and workers
//
// FindProxies looks the records up; a Keeper stays connected to want proxies (Proxies lists
// them, Lost reports one gone). Any node can be a bootstrap peer: all nodes run the DHT, in
// server mode unless told otherwise.
package discovery
