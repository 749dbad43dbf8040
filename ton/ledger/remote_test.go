package ledger

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/cocoon-mesh/cocoon/ton"
)

// The Remote names the operation in every error and keeps the ledger's sentinel errors (the
// refusals themselves run through it in the eachLedger tests); a server that is gone or answers
// something other than the ledger's JSON is an error too.
func TestRemoteErrors(t *testing.T) {
	ctx := context.Background()
	w := newRemoteWorld(t)
	w.fund(w.walletA, funded)
	si, _ := w.params.StateInit()
	body := ton.InitChannelBody(true, w.keyA, w.params.ChannelID, deposit, 0)
	other := w.params
	other.ChannelID[0] ^= 1
	otherSI, _ := other.StateInit()

	cases := []struct {
		name string
		err  error
		want error
		op   string
	}{
		{"mismatched StateInit", second(w.ld.OpenChannel(ctx, w.walletA, w.channel, otherSI, body, openValue)), ErrBadStateInit, "open channel"},
		{"overdrawn", second(w.ld.OpenChannel(ctx, w.walletA, w.channel, si, body, funded+1)), ErrInsufficientFunds, "open channel"},
		{"no body", second(w.ld.CooperativeClose(ctx, w.channel, nil)), ErrWrongOp, "cooperative close"},
		{"nil address", second(w.ld.Balance(ctx, nil)), ErrBadAddress, "balance"},
		{"no channel", second(w.ld.Channel(ctx, w.channel)), ErrNotFound, "channel"},
		{"finish on a wallet", second(w.ld.FinishUncooperativeClose(ctx, w.walletA)), ErrNotChannel, "finish uncooperative close"},
	}
	for _, c := range cases {
		if !errors.Is(c.err, c.want) || !strings.Contains(c.err.Error(), "remote "+c.op+":") {
			t.Errorf("%s: %v, want %v from %q", c.name, c.err, c.want, c.op)
		}
	}
	forged := ton.InitChannelBody(true, w.keyB, w.params.ChannelID, deposit, 0)
	if _, err := w.ld.OpenChannel(ctx, w.walletA, w.channel, si, forged, openValue); exitCode(err) != 101 || !errors.Is(err, ErrRefused) {
		t.Fatalf("forged init: %v, want exit 101", err)
	}
	w.conserved()

	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	if _, err := NewRemote(dead.URL, nil).Now(ctx); err == nil || !strings.Contains(err.Error(), "remote now:") || errors.Is(err, ErrUnconfirmed) {
		t.Fatalf("dead server: %v (a refused dial sent nothing, so it is not unconfirmed)", err)
	}
	// A connection lost after the request went out: the channel may be opening after all.
	cut := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
		c, _, err := rw.(http.Hijacker).Hijack()
		if err == nil {
			c.Close()
		}
	}))
	defer cut.Close()
	if _, err := NewRemote(cut.URL, cut.Client()).OpenChannel(ctx, w.walletA, w.channel, si, body, openValue); !errors.Is(err, ErrUnconfirmed) {
		t.Fatalf("connection cut after the request: %v, want ErrUnconfirmed", err)
	}
	junk := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
		http.Error(rw, "bad gateway", http.StatusBadGateway)
	}))
	defer junk.Close()
	if err := NewRemote(junk.URL, junk.Client()).Fund(ctx, w.walletA, 1); err == nil ||
		!strings.Contains(err.Error(), "remote fund:") || !strings.Contains(err.Error(), "502") {
		t.Fatalf("junk server: %v", err)
	}
}

func second[T any](_ T, err error) error { return err }
