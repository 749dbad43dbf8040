// Package admin serves a node's operator endpoints over its exported API: GET
// /cocoon/v1/status (node.Status), GET /cocoon/v1/channels (Channels), GET /cocoon/v1/wallet
// (Wallet) and POST /cocoon/v1/channels/{peer}/open, topup and close[?force=true]
// (OpenChannel, TopUpChannel, CloseChannel). What shows or moves money wants the API key or
// the local token even when no API key is set (httpguard.Guard.NeedSecret). Endpoints.Routes
// adds them to a client's API; Endpoints.Handler serves them alone, as at a node's AdminAddr.
// api.Serve does both.
package admin
