package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	leveldb "github.com/ipfs/go-ds-leveldb"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/xssnick/tonutils-go/address"

	"github.com/cocoon-mesh/cocoon/api/admin"
	"github.com/cocoon-mesh/cocoon/node"
	"github.com/cocoon-mesh/cocoon/ton"
	"github.com/cocoon-mesh/cocoon/ton/chanstore"
)

// testPeer is a valid peer ID that names no running node.
func testPeer(t *testing.T) string {
	t.Helper()
	_, pub, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return id.String()
}

// fakeNode answers the operator endpoints as a node would, and records what it was asked.
type fakeNode struct {
	*httptest.Server
	mu   sync.Mutex
	asks []string // "METHOD path?query auth"
}

func newFakeNode(t *testing.T, answer func(w http.ResponseWriter, r *http.Request)) *fakeNode {
	f := &fakeNode{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.asks = append(f.asks, r.Method+" "+r.URL.RequestURI()+" "+r.Header.Get("Authorization"))
		f.mu.Unlock()
		answer(w, r)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeNode) asked() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.asks...)
}

func writeTestJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// runCmd runs cocoon-node in process and returns its output.
func runCmd(args ...string) (string, error) {
	var out bytes.Buffer
	m := &Main{Stdout: &out, Stderr: &out}
	err := m.Run(context.Background(), args)
	return out.String(), err
}

// Bad command lines are refused as usage errors before any node is asked.
func TestChannelsArgumentErrors(t *testing.T) {
	t.Setenv("COCOON_API_KEY", "")
	f := newFakeNode(t, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(500) })
	p := testPeer(t)
	for _, args := range [][]string{
		{"channels"},
		{"channels", "frobnicate"},
		{"channels", "list", "extra"},
		{"channels", "list", "--api-key", "k"},
		{"channels", "list", "--node", "ftp://127.0.0.1:1"},
		{"channels", "open", "--node", f.URL},
		{"channels", "open", p, p, "--node", f.URL},
		{"channels", "topup", "not-a-peer", "--node", f.URL},
		{"channels", "close", p},
		{"channels", "open", p, "--node", "http://"},
	} {
		_, err := runCmd(args...)
		if !errors.As(err, new(usageError)) {
			t.Errorf("%q: %v, want a usage error", args, err)
		}
	}
	if _, err := runCmd("channels", "open", p, "--force", "--node", f.URL); err == nil {
		t.Error("--force accepted on open")
	}
	if a := f.asked(); len(a) != 0 {
		t.Errorf("the node was asked: %q", a)
	}
}

// The commands call the node's endpoints with the key, flags may follow the peer, and the
// node's error message reaches the operator.
func TestChannelsCommandsCallTheNode(t *testing.T) {
	p := testPeer(t)
	ch := node.ChannelStatus{Peer: p, Role: "payer", State: "open", ChannelID: "00ff", Address: "EQtest", Deposit: 1000, Paid: 40, Owed: 2, Seqno: 3}
	f := newFakeNode(t, func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/close"):
			closing := ch
			closing.State = "closing"
			writeTestJSON(w, 200, admin.ChannelList{Channels: []node.ChannelStatus{closing, closing}})
		case strings.HasSuffix(r.URL.Path, "/topup"):
			writeTestJSON(w, 409, map[string]any{"error": map[string]any{"message": "payments are off on this node", "type": "invalid_request_error", "code": "payments_off"}})
		default:
			writeTestJSON(w, 200, ch)
		}
	})
	t.Setenv("COCOON_API_KEY", "from-env")
	out, err := runCmd("channels", "open", p, "--node", strings.TrimPrefix(f.URL, "http://"))
	if err != nil || strings.TrimSpace(out) != "role=payer state=open peer="+p+" channel=00ff address=EQtest deposit=1000 paid=40 owed=2 seqno=3" {
		t.Fatalf("open: %q %v", out, err)
	}
	out, err = runCmd("channels", "close", p, "--force", "--node", f.URL+"/v1", "--api-key", "from-flag")
	if err != nil || strings.Count(out, "state=closing") != 2 || strings.Count(out, "\n") != 2 {
		t.Fatalf("close: %q %v", out, err)
	}
	_, err = runCmd("channels", "topup", "--node", f.URL, p)
	if err == nil || !strings.Contains(err.Error(), "payments are off on this node") || !strings.Contains(err.Error(), "409") {
		t.Fatalf("topup refused: %v", err)
	}
	want := []string{
		"POST /cocoon/v1/channels/" + p + "/open Bearer from-env",
		"POST /cocoon/v1/channels/" + p + "/close?force=true Bearer from-flag",
		"POST /cocoon/v1/channels/" + p + "/topup Bearer from-env",
	}
	if got := f.asked(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("asked\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// A running node's channels list as a table with the stored listing's columns, then OWED and PEER.
func TestChannelsListFromNode(t *testing.T) {
	t.Setenv("COCOON_API_KEY", "")
	t.Setenv("HOME", t.TempDir()) // no ~/.cocoon/local-token to send
	p := testPeer(t)
	f := newFakeNode(t, func(w http.ResponseWriter, _ *http.Request) {
		writeTestJSON(w, 200, admin.ChannelList{Channels: []node.ChannelStatus{
			{Peer: p, Role: "payee", State: "closing", ChannelID: "abcd", Address: "EQx", Deposit: 1000, Paid: 300, Owed: 7, Seqno: 9},
			{Peer: p, Role: "payee", State: "open", ChannelID: "abce", Address: "EQy", Deposit: 1000, Paid: 40, Seqno: 2},
			{Peer: p, Role: "payer", State: "open", ChannelID: "abcf", Address: "EQz", Deposit: 500, Paid: 320, Seqno: 5},
		}})
	})
	out, err := runCmd("channels", "list", "--node", f.URL)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 6 || strings.Join(strings.Fields(lines[0]), " ") != "ROLE CHANNEL ADDRESS DEPOSIT (nanoTON) PAID LEFT SEQNO STATE OWED PEER" {
		t.Fatalf("table:\n%s", out)
	}
	if got := strings.Join(strings.Fields(lines[1]), " "); got != "payee abcd EQx 1000 300 700 9 closing 7 "+p {
		t.Fatalf("row %q", got)
	}
	// What the channels paid this node, what it paid, and (a proxy's margin) the difference.
	if lines[5] != "Received 340 nanoTON on 2 channel(s) paying this node; paid 320 nanoTON on 1 channel(s) it pays; difference 20." {
		t.Fatalf("totals %q", lines[5])
	}
	if a := f.asked(); len(a) != 1 || a[0] != "GET /cocoon/v1/channels " {
		t.Fatalf("asked %q", a)
	}
	empty := newFakeNode(t, func(w http.ResponseWriter, _ *http.Request) { writeTestJSON(w, 200, admin.ChannelList{}) })
	if out, err := runCmd("channels", "list", "--node", empty.URL); err != nil || !strings.Contains(out, "(no channels)") {
		t.Fatalf("empty: %q %v", out, err)
	}
}

// A stopped node's listing reads its datastore and shows each channel's state, in the columns
// the payments test parses by position.
func TestChannelsListFromDatastore(t *testing.T) {
	dir := t.TempDir()
	ds, err := leveldb.NewDatastore(filepath.Join(dir, "datastore"), nil)
	if err != nil {
		t.Fatal(err)
	}
	keyA := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, ed25519.SeedSize))
	keyB := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{2}, ed25519.SeedSize))
	var id ton.ChannelID
	copy(id[:], "cmd-list-channel")
	params := ton.Params{
		KeyA: keyA.Public().(ed25519.PublicKey), KeyB: keyB.Public().(ed25519.PublicKey), ChannelID: id,
		Closing: ton.ClosingConfig{QuarantineDuration: 3600, ConditionalCloseDuration: 60},
		Payments: ton.PaymentConfig{ExcessFee: 1, DestA: address.NewAddress(0, 0, bytes.Repeat([]byte{0xA}, 32)),
			DestB: address.NewAddress(0, 0, bytes.Repeat([]byte{0xB}, 32))},
	}
	rec, err := chanstore.NewRecord(chanstore.Payer, params, 1000, 0)
	if err != nil {
		t.Fatal(err)
	}
	rec.Voucher, rec.HasVoucher, rec.State = ton.SignVoucher(keyA, id, 4, 250), true, chanstore.Closing
	if err := chanstore.New(ds).Put(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	ds.Close()

	out, err := runCmd("channels", "list", "--data-dir", dir)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 || !strings.HasPrefix(strings.Join(strings.Fields(lines[0]), " "), "ROLE CHANNEL ADDRESS DEPOSIT (nanoTON) PAID LEFT SEQNO STATE UPDATED") ||
		lines[3] != "Received 0 nanoTON on 0 channel(s) paying this node; paid 250 nanoTON on 1 channel(s) it pays." {
		t.Fatalf("table:\n%s", out)
	}
	f := strings.Fields(lines[1])
	if len(f) < 8 || f[0] != "payer" || f[1] != "636d642d6c6973742d6368616e6e656c" || f[3] != "1000" || f[4] != "250" || f[5] != "750" || f[6] != "4" || f[7] != "closing" {
		t.Fatalf("row %q", f)
	}
}

// A real proxy started with --admin serves its status and channel endpoints there, reports the
// bound address in its ready file, and guards them with its API key.
func TestRunServesAdminEndpoints(t *testing.T) {
	dir := t.TempDir()
	p := start(t, "proxy", "run", "--role", "proxy", "--local", "--network", "admin-test-"+filepath.Base(dir),
		"--data-dir", filepath.Join(dir, "proxy"), "--listen", "/ip4/127.0.0.1/tcp/0",
		"--admin", "127.0.0.1:0", "--api-key", "sesame", "--ready-file", filepath.Join(dir, "proxy.ready"))
	r := p.ready
	if !strings.HasPrefix(r.Admin, "127.0.0.1:") || strings.HasSuffix(r.Admin, ":0") || r.API != "" {
		t.Fatalf("ready file: %+v", r)
	}
	t.Setenv("COCOON_API_KEY", "sesame")
	_, err := runCmd("channels", "list", "--node", r.Admin)
	if err == nil || !strings.Contains(err.Error(), "payments are off") {
		t.Fatalf("list on a proxy without payments: %v", err)
	}
	_, err = runCmd("channels", "close", testPeer(t), "--node", "http://"+r.Admin, "--api-key", "wrong")
	if err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("close with a wrong key: %v", err)
	}
	req, _ := http.NewRequest("GET", "http://"+r.Admin+"/cocoon/v1/status", nil)
	req.Header.Set("Authorization", "Bearer sesame")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st node.Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil || st.Role != node.RoleProxy {
		t.Fatalf("status: %+v %v", st, err)
	}
}

// [admin] addr reaches the node's config; the key may be set in [client] or [admin], once.
func TestConfigAdminSection(t *testing.T) {
	for _, role := range []string{"client", "proxy", "worker"} { // init's file leaves it off
		fc, err := parseConfig(strings.NewReader(renderDefaultConfig(role)))
		if err != nil {
			t.Fatal(err)
		}
		if s, err := fc.resolve(); err != nil || s.node.AdminAddr != "" || s.node.APIKey != "" {
			t.Fatalf("%s default: %v: admin %q key %q", role, err, s.node.AdminAddr, s.node.APIKey)
		}
	}
	fc, err := parseConfig(strings.NewReader("role = \"worker\"\n[admin]\naddr = \"127.0.0.1:9100\"\napi_key = \"k\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := fc.resolve()
	if err != nil || s.node.AdminAddr != "127.0.0.1:9100" || s.node.APIKey != "k" {
		t.Fatalf("resolved %v: admin %q key %q", err, s.node.AdminAddr, s.node.APIKey)
	}
	fc.Client.APIKey = "other"
	if _, err := fc.resolve(); err == nil || !strings.Contains(err.Error(), "differ") {
		t.Fatalf("two different keys: %v", err)
	}
	if err := (&runFlags{apiKey: "flag", admin: "127.0.0.1:9200"}).apply(&fc); err != nil {
		t.Fatal(err)
	}
	if s, err = fc.resolve(); err != nil || s.node.APIKey != "flag" || s.node.AdminAddr != "127.0.0.1:9200" {
		t.Fatalf("flags over the file: %v: admin %q key %q", err, s.node.AdminAddr, s.node.APIKey)
	}
}
