package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	leveldb "github.com/ipfs/go-ds-leveldb"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cocoon-mesh/cocoon/api/admin"
	"github.com/cocoon-mesh/cocoon/node"
	"github.com/cocoon-mesh/cocoon/ton/chanstore"
)

const channelsUsage = `usage: cocoon-node channels list [--node URL] [--data-dir DIR] [--api-key KEY]
       cocoon-node channels open|topup|close PEER [--force] --node URL [--data-dir DIR] [--api-key KEY]
With --node, the running node's local token is read from DIR/local-token (default ~/.cocoon)
unless --api-key or $COCOON_API_KEY gives its api_key or token.`

// commandTimeout bounds one call to a running node: longer than the two minutes the node gives
// a channel command, so its own answer, even a timeout, arrives.
const commandTimeout = 3 * time.Minute

// channels runs `cocoon-node channels`: list a node's payment channels, running (--node) or
// stopped (its datastore), or open, top up or close the channel with a peer on a running node.
func (m *Main) channels(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usageError(channelsUsage)
	}
	if isHelp(args[0]) { // the flags of list and of the commands, which are alike
		_ = m.channelsCommand(ctx, "close", []string{"-h"}) // prints its flags
		return flag.ErrHelp
	}
	switch args[0] {
	case "list":
		return m.channelsList(ctx, args[1:])
	case "open", "topup", "close":
		return m.channelsCommand(ctx, args[0], args[1:])
	}
	return usageError(fmt.Sprintf("channels %q: want list, open, topup or close\n%s", args[0], channelsUsage))
}

// channelsList runs `cocoon-node channels list`.
func (m *Main) channelsList(ctx context.Context, args []string) error {
	fs := m.flagSet("channels list")
	nodeURL := fs.String("node", "", "a running node's URL: a client's API (http://127.0.0.1:10000) or a proxy's or worker's admin address")
	apiKey := fs.String("api-key", "", "with --node: the node's api_key or local token (default $COCOON_API_KEY, else the token in --data-dir)")
	dataDir := fs.String("data-dir", "", "the node's data directory (default ~/.cocoon): without --node, the stopped node's datastore is read; with it, its local token")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError(fmt.Sprintf("unexpected argument %q\n%s", fs.Arg(0), channelsUsage))
	}
	if *nodeURL == "" {
		if *apiKey != "" {
			return usageError("channels list: --api-key is for a running node (--node URL); a stopped one's datastore is read directly")
		}
		return m.listStored(ctx, *dataDir)
	}
	c, err := newNodeClient(*nodeURL, *apiKey, *dataDir)
	if err != nil {
		return err
	}
	var list admin.ChannelList
	if err := c.call(ctx, http.MethodGet, "/cocoon/v1/channels", &list); err != nil {
		return err
	}
	return m.printLive(list.Channels)
}

// channelsCommand runs `cocoon-node channels open|topup|close PEER` against a running node.
func (m *Main) channelsCommand(ctx context.Context, cmd string, args []string) error {
	fs := m.flagSet("channels " + cmd)
	nodeURL := fs.String("node", "", "the running node's URL: a client's API (http://127.0.0.1:10000) or a proxy's or worker's admin address")
	apiKey := fs.String("api-key", "", "the node's api_key or local token (default $COCOON_API_KEY, else the token in --data-dir)")
	dataDir := fs.String("data-dir", "", "the node's data directory, holding its local token (default ~/.cocoon)")
	var force *bool
	if cmd == "close" {
		force = fs.Bool("force", false, "close alone, without the peer's signature: the payout waits for the quarantine")
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError(fmt.Sprintf("channels %s takes one peer ID, got %d arguments\n%s", cmd, len(pos), channelsUsage))
	}
	p, err := peer.Decode(pos[0])
	if err != nil {
		return usageError(fmt.Sprintf("%q is not a peer ID: %v", pos[0], err))
	}
	if *nodeURL == "" {
		return usageError(fmt.Sprintf("channels %s needs --node URL: the running node to ask\n%s", cmd, channelsUsage))
	}
	c, err := newNodeClient(*nodeURL, *apiKey, *dataDir)
	if err != nil {
		return err
	}
	path := "/cocoon/v1/channels/" + url.PathEscape(p.String()) + "/" + cmd
	if cmd != "close" {
		var st node.ChannelStatus
		if err := c.call(ctx, http.MethodPost, path, &st); err != nil {
			return err
		}
		fmt.Fprintln(m.Stdout, channelLine(st))
		return nil
	}
	if *force {
		path += "?force=true"
	}
	var list admin.ChannelList
	if err := c.call(ctx, http.MethodPost, path, &list); err != nil {
		return err
	}
	for _, st := range list.Channels {
		fmt.Fprintln(m.Stdout, channelLine(st))
	}
	if len(list.Channels) == 0 {
		fmt.Fprintf(m.Stdout, "no channel with %s to close\n", p)
	}
	return nil
}

// parseInterspersed parses flags given before or after the positional arguments, which the
// flag package alone stops at, and returns the positional arguments.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// channelLine is one channel on one line, as key=value pairs for people and scripts alike.
func channelLine(c node.ChannelStatus) string {
	return fmt.Sprintf("role=%s state=%s peer=%s channel=%s address=%s deposit=%d paid=%d owed=%d seqno=%d",
		c.Role, c.State, c.Peer, c.ChannelID, c.Address, c.Deposit, c.Paid, c.Owed, c.Seqno)
}

// channelsHeader is the columns both listings share, in the same order, so one parser reads both.
const channelsHeader = "ROLE\tCHANNEL\tADDRESS\tDEPOSIT (nanoTON)\tPAID\tLEFT\tSEQNO\tSTATE"

// printLive prints the channels a running node reported.
func (m *Main) printLive(chans []node.ChannelStatus) error {
	tw := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, channelsHeader+"\tOWED\tPEER")
	var t totals
	for _, c := range chans {
		addr := c.Address
		if addr == "" {
			addr = "?"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\t%d\t%s\n", c.Role, c.ChannelID, addr, c.Deposit, c.Paid,
			c.Deposit-min(c.Deposit, c.Paid), c.Seqno, c.State, c.Owed, c.Peer)
		t.add(c.Role, c.Paid)
	}
	return m.endListing(tw, len(chans), &t)
}

// endListing ends a listing of n channels: a line saying there are none, the table, then the
// totals.
func (m *Main) endListing(tw *tabwriter.Writer, n int, t *totals) error {
	if n == 0 {
		fmt.Fprintln(tw, "(no channels)")
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	t.write(m.Stdout)
	return nil
}

// totals sums what a node's channels paid it and what it paid on them.
type totals struct {
	received, paid uint64
	in, out        int
}

func (t *totals) add(role string, paid uint64) {
	if role == "payee" {
		t.received += paid
		t.in++
	} else {
		t.out++
		t.paid += paid
	}
}

// write prints the totals under a listing: for a proxy, its margin too.
func (t *totals) write(w io.Writer) {
	if t.in+t.out == 0 {
		return
	}
	fmt.Fprintf(w, "\nReceived %d nanoTON on %d channel(s) paying this node; paid %d nanoTON on %d channel(s) it pays", t.received, t.in, t.paid, t.out)
	if t.in > 0 && t.out > 0 {
		fmt.Fprintf(w, "; difference %d", int64(t.received)-int64(t.paid))
	}
	fmt.Fprintln(w, ".")
}

// listStored prints every payment channel a stopped node's datastore holds, as it was last
// made durable. A running node holds its datastore: ask it with --node instead.
func (m *Main) listStored(ctx context.Context, dataDir string) error {
	dir, err := dataDirOr(dataDir)
	if err != nil {
		return err
	}
	ds, err := leveldb.NewDatastore(filepath.Join(dir, "datastore"), &leveldb.Options{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("open datastore in %s: %w (stop the node using this data dir first, or ask it with --node)", dir, err)
	}
	defer ds.Close()
	recs, err := chanstore.New(ds).List(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, channelsHeader+"\tUPDATED")
	var t totals
	for _, r := range recs {
		addr := "?"
		if a, err := r.Address(); err == nil {
			addr = a.String()
		}
		fmt.Fprintf(tw, "%s\t%x\t%s\t%d\t%d\t%d\t%d\t%s\t%s\n", r.Role, r.ChannelID[:], addr, r.Limit, r.Voucher.Sent,
			r.Limit-min(r.Limit, r.Voucher.Sent), r.Voucher.Seqno, r.State, r.Updated.Format("2006-01-02 15:04:05"))
		t.add(r.Role.String(), r.Voucher.Sent)
	}
	return m.endListing(tw, len(recs), &t)
}

// nodeClient calls a running node's operator endpoints.
type nodeClient struct {
	base, key string
	// tokenHint says where the local token was looked for, when none was found: the node's
	// refusal then says what to give.
	tokenHint string
}

// httpAddr reads an address given on the command line as an http(s) URL, or as host:port
// meaning http; false for anything else.
func httpAddr(raw string) (*url.URL, bool) {
	s := raw
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	ok := err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
	return u, ok
}

// newNodeClient checks a --node URL. A bare host:port is taken as http, and any path is
// dropped, so a client's API base (http://127.0.0.1:10000/v1) works as well. The bearer secret
// is key, else $COCOON_API_KEY (read here, not as the flag's default, so -h never shows it),
// else the node's local token in dataDir: given, it must hold one; empty, ~/.cocoon is tried
// for a node on this machine.
func newNodeClient(raw, key, dataDir string) (*nodeClient, error) {
	u, ok := httpAddr(raw)
	if !ok {
		return nil, usageError(fmt.Sprintf("--node %q: want a running node's URL, e.g. http://127.0.0.1:10000 (a client's api_addr, a proxy's or worker's admin addr)", raw))
	}
	c := &nodeClient{base: u.Scheme + "://" + u.Host, key: key}
	if c.key == "" {
		c.key = os.Getenv("COCOON_API_KEY")
	}
	if c.key != "" {
		return c, nil
	}
	if dataDir != "" {
		var err error
		if c.key, err = readToken(tokenPath(dataDir)); err != nil {
			return nil, fmt.Errorf("%w (--data-dir must be the data dir of the node at %s, which writes its local token there when it starts; or give --api-key)", err, raw)
		}
		return c, nil
	}
	if !isLoopback(u.Hostname()) { // this machine's token is no secret to send elsewhere
		c.tokenHint = "the node is not on this machine: give --api-key KEY (its api_key or local token) or $COCOON_API_KEY"
		return c, nil
	}
	dir, err := dataDirOr("")
	if err == nil {
		c.key, err = readToken(tokenPath(dir))
	}
	if err != nil {
		c.tokenHint = fmt.Sprintf("no local token at %s (%v): give --data-dir DIR, the node's data dir, where it writes local-token when it starts; or --api-key KEY (its api_key or token) or $COCOON_API_KEY", tokenPath(dir), err)
	}
	return c, nil
}

// isLoopback reports whether host names this machine.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// call sends one request and decodes the JSON answer into out, or returns the node's error.
func (c *nodeClient) call(ctx context.Context, method, path string, out any) error {
	ctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	var body io.Reader
	if method == http.MethodPost {
		body = strings.NewReader("{}") // the commands take no parameters in their body
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.key != "" {
		req.Header.Set("Authorization", "Bearer "+c.key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach the node: %w", err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("reading the node's answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		err := nodeError(resp.StatusCode, answer)
		if resp.StatusCode == http.StatusUnauthorized && c.tokenHint != "" {
			err = fmt.Errorf("%w\n%s", err, c.tokenHint)
		}
		return err
	}
	if err := json.Unmarshal(answer, out); err != nil {
		return fmt.Errorf("the node's answer is not what %s %s returns: %w", method, path, err)
	}
	return nil
}

// nodeError is the message of a node's OpenAI-shaped error, or the start of whatever else it sent.
func nodeError(status int, body []byte) error {
	var e struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &e) == nil && e.Error.Message != "" {
		return fmt.Errorf("the node answered %d: %s", status, e.Error.Message)
	}
	body = bytes.TrimSpace(body)
	if len(body) > 200 {
		body = append(body[:200:200], "..."...)
	}
	return fmt.Errorf("the node answered %d: %q", status, body)
}
