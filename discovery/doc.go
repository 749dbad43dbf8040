// Package discovery finds proxies without a registry: proxies put provider records into a
// private Kademlia DHT under a key derived from the network name (and one key per model they
// serve), and clients and workers look those records up and stay connected to several proxies.
//
// The caller builds a Service around its libp2p host, calls Bootstrap once, then runs
// Advertise (proxies) or a Keeper (clients and workers) until its context ends. Any node can be a
// bootstrap peer: all nodes run the DHT, in server mode unless told otherwise.
package discovery
