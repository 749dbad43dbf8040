package channel

import (
	"crypto/ed25519"
	"flag"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/xssnick/tonutils-go/address"

	"github.com/cocoon-mesh/cocoon/internal/script"
	"github.com/cocoon-mesh/cocoon/ton"
	"github.com/cocoon-mesh/cocoon/ton/chanstore"
)

var rewrite = flag.Bool("rewrite", false, "rewrite testdata/*.txt with the actual output")

// TestScripts runs testdata/*.txt: blocks of one command line, "----", and the expected
// output up to a blank line (internal/script, as routing's). Lines starting
// with '#' are comments. Each command is one handler of commands (cmds_test.go); after it
// the script shows what the Step asked for and the channel's state. Run with -rewrite to
// regenerate.
func TestScripts(t *testing.T) {
	script.RunDir(t, *rewrite, func(t *testing.T) script.Runner { return newEnv(t).run })
}

// t0 is the scripts' epoch: times print as offsets from it.
var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// env is one script's world: the channel under test, the disk it persists to, the chain it
// observes, and the keys of both sides (the harness plays the counterparty).
type env struct {
	t            *testing.T
	keyA, keyB   ed25519.PrivateKey
	other        ed25519.PrivateKey // nobody's key: forgeries
	cfg          Config
	role         chanstore.Role
	params       ton.Params
	ch           *Channel
	now          time.Time
	disk, before *chanstore.Record // the durable record, and what it was before the last Step
	chain        ChainObserved     // what observe reports
	sent         []Message         // messages sent since the script began, newest last
	acts         []Action          // chain actions asked for, newest last
	out          strings.Builder
}

func newEnv(t *testing.T) *env {
	return &env{t: t, keyA: testKey(1), keyB: testKey(2), other: testKey(9), now: t0}
}

func testKey(seed byte) ed25519.PrivateKey {
	var s [ed25519.SeedSize]byte
	s[0] = seed
	return ed25519.NewKeyFromSeed(s[:])
}

// testParams are the channel's parameters, for a closing config of quarantine and cond
// seconds.
func testParams(keyA, keyB ed25519.PrivateKey, quarantine, cond uint32) ton.Params {
	var id ton.ChannelID
	copy(id[:], "cocoon-channel01")
	da, db := make([]byte, 32), make([]byte, 32)
	da[0], db[0] = 0xaa, 0xbb
	return ton.Params{
		KeyA: keyA.Public().(ed25519.PublicKey), KeyB: keyB.Public().(ed25519.PublicKey), ChannelID: id,
		Closing:  ton.ClosingConfig{QuarantineDuration: quarantine, ConditionalCloseDuration: cond},
		Payments: ton.PaymentConfig{ExcessFee: 1000, DestA: address.NewAddress(0x11, 0, da), DestB: address.NewAddress(0x51, 0, db)},
	}
}

// run executes one script line and returns what it prints.
func (e *env) run(file string, line int, cmd string) string {
	e.out.Reset()
	fields := strings.Fields(cmd)
	h, ok := commands[fields[0]]
	if !ok {
		e.t.Fatalf("%s:%d: unknown command %q", file, line, fields[0])
	}
	a := parseArgs(fields[1:])
	if ev := e.handle(file, line, h, a); ev != nil {
		e.step(ev)
	}
	if e.ch != nil {
		fmt.Fprintf(&e.out, "state: %s\n", e.describe())
	}
	return e.out.String()
}

// scriptError is a command the script got wrong: handle reports it and goes on.
type scriptError string

// handle runs h, reporting a scriptError as a failed test and a line of output.
func (e *env) handle(file string, line int, h func(*env, args) Event, a args) (ev Event) {
	defer func() {
		if r := recover(); r != nil {
			msg, ok := r.(scriptError)
			if !ok {
				panic(r)
			}
			e.t.Errorf("%s:%d: %s", file, line, msg)
			fmt.Fprintf(&e.out, "script error: %s\n", msg)
			ev = nil
		}
	}()
	return h(e, a)
}

// fatalf stops the command: the script got it wrong.
func (e *env) fatalf(format string, a ...any) { panic(scriptError(fmt.Sprintf(format, a...))) }

// step steps ev into the channel as the caller's loop does, keeping the disk, and checks
// that an error changed nothing.
func (e *env) step(ev Event) {
	snap := e.ch.clone()
	e.before = e.disk
	eff, err := e.ch.Step(e.now, ev)
	if err != nil {
		same := reflect.DeepEqual(snap, *e.ch)
		if !same {
			e.t.Errorf("Step(%T) failed with %v and changed the channel", ev, err)
		}
		fmt.Fprintf(&e.out, "error: %v (unchanged: %t)\n", err, same)
		return
	}
	for _, w := range eff.Persist {
		if w.Delete {
			e.disk = nil
			fmt.Fprintf(&e.out, "delete: %s\n", w.Record.Role)
			continue
		}
		r := w.Record
		e.disk = &r
		fmt.Fprintf(&e.out, "persist: %s\n", fmtRecord(r))
	}
	for _, m := range eff.Send {
		e.checkDurable(m)
		e.sent = append(e.sent, m)
		fmt.Fprintf(&e.out, "send: %s\n", fmtMessage(m))
	}
	for _, a := range eff.Chain {
		e.acts = append(e.acts, a)
		fmt.Fprintf(&e.out, "chain: %s\n", fmtAction(a))
	}
	if eff.Replace {
		e.out.WriteString("replace: open a new channel to the payee\n")
	}
	for _, n := range eff.Notes {
		fmt.Fprintf(&e.out, "note: %s\n", n)
	}
}

// checkDurable fails the test if m carries a payer's voucher that the disk does not hold
// (or a newer one): persist before send.
func (e *env) checkDurable(m Message) {
	var v *ton.Voucher
	switch m := m.(type) {
	case Pay:
		v = &m.Voucher
	case Settle:
		v = m.Voucher
	case Announce:
		v = m.Voucher
	}
	if v != nil && (e.disk == nil || !e.disk.HasVoucher || e.disk.Voucher.Seqno < v.Seqno) {
		e.t.Errorf("voucher %s sent before it was durable (disk: %v)", fmtVoucher(v), e.disk)
	}
}

// lastSent is the newest message of kind k sent.
func (e *env) lastSent(k Kind) Message {
	for i := len(e.sent) - 1; i >= 0; i-- {
		if e.sent[i].Kind() == k {
			return e.sent[i]
		}
	}
	e.fatalf("no %s was sent", k)
	return nil
}

// lastAction is the newest chain action named name.
func (e *env) lastAction(name string) Action {
	for i := len(e.acts) - 1; i >= 0; i-- {
		if e.acts[i].Name() == name {
			return e.acts[i]
		}
	}
	e.fatalf("no %s was asked for", name)
	return nil
}

// describe is the channel's state line.
func (e *env) describe() string {
	c := e.ch
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", c.role, c.state)
	if c.stored() {
		fmt.Fprintf(&b, " seqno=%d sent=%d", c.rec.Voucher.Seqno, c.rec.Voucher.Sent)
	}
	if c.role == chanstore.Payer {
		fmt.Fprintf(&b, " received=%d unpaid=%d acked=%d active=%d", c.meter.Received(), c.meter.Unpaid(), c.acked, c.active)
		mark(&b, c.inUse, "greeted")
		mark(&b, c.stopped, "stopped")
		mark(&b, c.disputed, "disputed")
		if !c.flushAt.IsZero() {
			fmt.Fprintf(&b, " flush=%s", c.flushAt.Sub(t0))
		}
	} else {
		fmt.Fprintf(&b, " delivered=%d owed=%d written-off=%d", c.credit.Delivered(), c.credit.Owed(), c.credit.WrittenOff())
		if c.disputes > 0 {
			fmt.Fprintf(&b, " disputes=%d", c.disputes)
		}
		mark(&b, c.shut, "shut")
		if !c.askAt.IsZero() && c.credit.Owed() > 0 {
			fmt.Fprintf(&b, " ask=%s", c.askAt.Sub(t0))
		}
	}
	if c.pending != 0 {
		var ks []string
		for k := KindPay; k <= KindAskSettle; k++ {
			if c.pending.has(k) {
				ks = append(ks, k.String())
			}
		}
		fmt.Fprintf(&b, " awaiting=%s", strings.Join(ks, ","))
	}
	if c.att != nil {
		fmt.Fprintf(&b, " close=%s/%s", c.att.mode, c.att.phase)
		mark(&b, c.att.asked, "asked")
	}
	if c.acting != "" {
		fmt.Fprintf(&b, " acting=%s", c.acting)
	}
	return b.String()
}

func mark(b *strings.Builder, on bool, name string) {
	if on {
		b.WriteString(" " + name)
	}
}

func fmtVoucher(v *ton.Voucher) string {
	if v == nil {
		return "none"
	}
	return fmt.Sprintf("%d/%d", v.Seqno, v.Sent)
}

func fmtRecord(r chanstore.Record) string {
	s := fmt.Sprintf("%s %s limit=%d committed=%d", r.Role, r.State, r.Limit, r.CommittedSeqno)
	if r.HasVoucher {
		s += " voucher=" + fmtVoucher(&r.Voucher)
	}
	if r.PayeeSemi != ([64]byte{}) {
		s += " payee-semi"
	}
	return s + fmt.Sprintf(" updated=%s", r.Updated.Sub(t0))
}

func fmtStream(s any) string {
	if s == nil {
		return "(channel stream)"
	}
	return fmt.Sprintf("on %v", s)
}

func fmtClose(c ton.CooperativeClose) string {
	return fmt.Sprintf("a=%d b=%d seqno-a=%d seqno-b=%d", c.BalanceA, c.BalanceB, c.SeqnoA, c.SeqnoB)
}

func fmtMessage(m Message) string {
	switch m := m.(type) {
	case Pay:
		return fmt.Sprintf("pay %s %s", fmtVoucher(&m.Voucher), fmtStream(m.Stream))
	case Settle:
		return fmt.Sprintf("settle %s %s", fmtVoucher(m.Voucher), fmtStream(m.Stream))
	case Announce:
		return "announce " + fmtVoucher(m.Voucher)
	case Propose:
		return "propose " + fmtClose(m.Close)
	case AskClose:
		return "ask-close"
	case AskSettle:
		return "ask-settle"
	case View:
		s := fmt.Sprintf("view limit=%d voucher=%s", m.Limit, fmtVoucher(m.Voucher))
		if len(m.PayeeSemi) > 0 {
			s += " payee-semi"
		}
		return s
	case Countersign:
		return "countersign " + fmtClose(m.Close)
	case Refusal:
		return "refusal: " + m.Err.Error()
	}
	return fmt.Sprintf("%T", m)
}

func fmtAction(a Action) string {
	switch a := a.(type) {
	case Observe:
		return "observe"
	case Deploy:
		return fmt.Sprintf("deploy deposit=%d value=%d", a.Deposit, a.Value)
	case CoopClose:
		return "coop-close " + fmtClose(a.Close)
	case StartSolo:
		by := "payee"
		if a.ByA {
			by = "payer"
		}
		return fmt.Sprintf("start-solo by=%s sent=%d value=%d", by, a.Sent, a.Value)
	case Challenge:
		return fmt.Sprintf("challenge sent=%d theirs=%d value=%d", a.Sent, a.Their, a.Value)
	case Finish:
		return fmt.Sprintf("finish paid=%d", a.Paid)
	}
	return a.Name()
}
