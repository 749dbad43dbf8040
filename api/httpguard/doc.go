// Package httpguard is what every HTTP server of a node sits behind, whatever API it serves.
// Guard.Serve serves a handler on a listener with:
//
//   - a connection cap (connCap, Config.MaxConns): at the cap, the connection idle longest is
//     closed to make room; when every one is busy, a new one is answered 503;
//   - deadlines (bound): the body within Config.BodyTimeout, each write of the answer within
//     Config.WriteTimeout, so a stream may last while a reader that stopped is dropped;
//   - Guard.Wrap: a Host that names the node (hostPolicy, against DNS rebinding), an Origin
//     the config allows (originPolicy: CORS headers, preflights answered), JSON for a POST.
//
// Guard.Authorize and Guard.NeedSecret check the bearer API key or local token. The guard's
// refusals and every face's errors share one envelope, OpenAI's (WriteError, ErrorBody). The
// package imports nothing of the mesh but wire's error codes, so node.Config holds its Config
// (the config file's [http] section) and node.New checks it with Validate.
package httpguard
