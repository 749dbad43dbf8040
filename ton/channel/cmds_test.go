package channel

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/cocoon-mesh/cocoon/ton"
	"github.com/cocoon-mesh/cocoon/ton/chanstore"
)

// args are a command's words: key=value pairs, and bare words (flags and positionals).
type args struct {
	kv    map[string]string
	words []string
}

func parseArgs(fields []string) args {
	a := args{kv: map[string]string{}}
	for _, f := range fields {
		if k, v, ok := strings.Cut(f, "="); ok {
			a.kv[k] = v
		} else {
			a.words = append(a.words, f)
		}
	}
	return a
}

func (a args) has(w string) bool {
	for _, x := range a.words {
		if x == w {
			return true
		}
	}
	return false
}

func (a args) num(e *env, k string, def uint64) uint64 {
	s, ok := a.kv[k]
	if !ok {
		return def
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		e.fatalf("%s=%q: %v", k, s, err)
	}
	return n
}

func (a args) dur(e *env, k string, def time.Duration) time.Duration {
	s, ok := a.kv[k]
	if !ok {
		return def
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		e.fatalf("%s=%q: %v", k, s, err)
	}
	return d
}

// commands maps each script command to its handler. A handler returns the event to step
// (nil: none); what it prints beside goes to e.out.
var commands = map[string]func(*env, args) Event{
	// new role=payer|payee [quarantine=s cond=s settle-idle= unearned-idle= watch-every=]
	"new": cmdNew,
	// open deposit=N [semi=bad]: a payer locks a deposit in the new channel.
	"open": func(e *env, a args) Event {
		semi := EmptySemi(Config{Key: e.keyB}, e.params.ChannelID)
		if a.kv["semi"] == "bad" {
			semi = EmptySemi(Config{Key: e.other}, e.params.ChannelID)
		}
		return OpenRequested{Deposit: a.num(e, "deposit", 10000), PayeeSemi: semi}
	},
	"resume-use": func(*env, args) Event { return ResumeRequested{} },
	// announce [voucher=S/N] [key=other]: the payer's FrameChannelOpen, the chain as set.
	"announce": func(e *env, a args) Event {
		key := e.keyA
		if a.kv["key"] == "other" {
			key = e.other
		}
		return Announced{KeyA: key.Public().(ed25519.PublicKey), Chain: e.chain.Storage, Voucher: e.voucherArg(a, "voucher")}
	},
	// reply to=KIND [voucher=S/N] [semi=none|bad]: the other side's FrameChannelState.
	"reply": func(e *env, a args) Event {
		r := Replied{To: kindArg(e, a.kv["to"]), Voucher: e.voucherArg(a, "voucher")}
		switch a.kv["semi"] {
		case "":
			r.PayeeSemi = EmptySemi(Config{Key: e.keyB}, e.params.ChannelID)
		case "bad":
			r.PayeeSemi = EmptySemi(Config{Key: e.other}, e.params.ChannelID)
		}
		return r
	},
	// voucher S/N [on=channel] [forge=sig|key|id] | voucher garbage: a voucher from the payer.
	"voucher": func(e *env, a args) Event {
		return VoucherReceived{Voucher: e.voucherWord(a), OnChannel: a.kv["on"] == "channel"}
	},
	// settled [S/N] [on=channel] [forge=...]: the payer's word that S/N pays all it received.
	"settled": func(e *env, a args) Event {
		return Settled{Voucher: e.voucherWord(a), OnChannel: a.kv["on"] == "channel"}
	},
	// propose sent=N seqno-a=S [seqno-b=1] [id=other] [key=other]: the payer's close.
	"propose": cmdPropose,
	// countersign [key=other] [tamper]: the payee's answer to our newest Propose.
	"countersign": func(e *env, a args) Event {
		p := e.lastSent(KindPropose).(Propose)
		cl, key := p.Close, e.keyB
		if a.kv["key"] == "other" {
			key = e.other
		}
		sig := cl.Sign(key)
		if a.has("tamper") {
			cl.BalanceB++
		}
		return CloseSigned{Close: cl, Signature: sig}
	},
	"begin": func(e *env, a args) Event { return AnswerBegan{Window: a.num(e, "window", 0)} },
	"end":   func(*env, args) Event { return AnswerEnded{} },
	// receive value=N every=N stream=S [final]
	"receive": func(e *env, a args) Event {
		return Received{Value: a.num(e, "value", 0), Every: a.num(e, "every", 0), Stream: a.kv["stream"], Final: a.has("final")}
	},
	"deliver": func(e *env, a args) Event {
		return Delivered{Cost: a.num(e, "cost", 0), Window: a.num(e, "window", 0)}
	},
	"refuse": func(e *env, a args) Event { return Refused{Value: a.num(e, "value", 0)} },
	"bill":   func(e *env, a args) Event { return Billed{Stream: a.kv["stream"]} },
	// ask-settle: the payee's AskSettle on the channel stream.
	"ask-settle": func(*env, args) Event { return SettleAsked{} },
	// chain none|open|uninited|closed|quarantine ...: what observe reports from now on.
	"chain":   cmdChain,
	"observe": func(e *env, _ args) Event { ev := e.chain; ev.LedgerNow = e.now; return ev },
	// close mode=together|either|alone [asked]
	"close": func(e *env, a args) Event {
		m := map[string]CloseMode{"together": Together, "either": Either, "alone": Alone}[a.kv["mode"]]
		return CloseRequested{Mode: m, Asked: a.has("asked")}
	},
	"rotate": func(*env, args) Event { return Rotate{} },
	// tick [D]: time passes by D, and the channel is ticked.
	"tick": func(e *env, a args) Event { e.now = e.now.Add(e.durWord(a)); return Tick{} },
	// wait D: time passes, nothing is stepped.
	"wait": func(e *env, a args) Event { e.now = e.now.Add(e.durWord(a)); return nil },
	// done NAME: the newest chain action NAME landed.
	"done": func(e *env, a args) Event { return ChainDone{Action: e.lastAction(a.words[0])} },
	// fail chain=NAME [unconfirmed] | fail send=KIND [stream] | fail persist
	"fail": cmdFail,
	// crash [lost] [nosemi]: the process dies after the last Step's writes (lost: before
	// they were durable) and the channel is rebuilt from the disk (nosemi: a record of an
	// older version, without the payee's semichannel signature).
	"crash": cmdCrash,
	"state": func(*env, args) Event { return nil },
}

func cmdNew(e *env, a args) Event {
	e.role = chanstore.Payer
	key := e.keyA
	if a.kv["role"] == "payee" {
		e.role, key = chanstore.Payee, e.keyB
	}
	e.params = testParams(e.keyA, e.keyB, uint32(a.num(e, "quarantine", 3600)), uint32(a.num(e, "cond", 60)))
	e.cfg = Config{Key: key, FlushAfter: 100 * time.Millisecond,
		SettleIdle: a.dur(e, "settle-idle", time.Hour), UnearnedIdle: a.dur(e, "unearned-idle", 30*time.Minute),
		WatchEvery: a.dur(e, "watch-every", 10*time.Minute), OpenFee: 50, DisputeFee: 20}
	ch, err := New(e.cfg, e.role, e.params)
	if err != nil {
		e.t.Fatal(err)
	}
	e.ch, e.disk, e.before, e.sent, e.acts = ch, nil, nil, nil, nil
	return nil
}

func cmdPropose(e *env, a args) Event {
	st := e.chain.Storage
	sent := a.num(e, "sent", 0)
	cl := ton.CooperativeClose{ChannelID: e.params.ChannelID, BalanceA: st.BalanceA - min(sent, st.BalanceA),
		BalanceB: st.BalanceB + sent, SeqnoA: a.num(e, "seqno-a", 1), SeqnoB: a.num(e, "seqno-b", 1)}
	if a.kv["id"] == "other" {
		cl.ChannelID[0] ^= 0xff
	}
	key := e.keyA
	if a.kv["key"] == "other" {
		key = e.other
	}
	return CloseProposed{Close: cl, Signature: cl.Sign(key), Chain: st}
}

func cmdChain(e *env, a args) Event {
	rec := e.ch.rec
	st := ton.Storage{KeyA: e.params.KeyA, KeyB: e.params.KeyB, ChannelID: e.params.ChannelID,
		Closing: e.params.Closing, Payments: e.params.Payments,
		BalanceA: a.num(e, "balance-a", 10000), BalanceB: a.num(e, "balance-b", 0),
		CommittedSeqnoA: uint32(a.num(e, "committed-a", rec.CommittedSeqno)), CommittedSeqnoB: uint32(a.num(e, "committed-b", 0))}
	found := true
	switch w := a.words[0]; w {
	case "none":
		found, st = false, ton.Storage{}
	case "open":
		st.Inited = true
	case "uninited":
	case "closed":
		st.BalanceA, st.BalanceB = 0, 0
		st.CommittedSeqnoA = uint32(a.num(e, "committed-a", rec.CommittedSeqno+max(rec.Voucher.Seqno, 1)))
	case "quarantine":
		st.Inited = true
		starts := t0.Add(a.dur(e, "starts", 0))
		st.Quarantine = &ton.QuarantinedState{
			StateA:           ton.SemiChannelBody{Seqno: a.num(e, "seqno", 0), Sent: a.num(e, "sent", 0)},
			QuarantineStarts: uint32(starts.Unix()), StateCommitedByA: a.kv["by"] != "payee",
			StateChallenged: a.has("challenged"),
		}
	default:
		e.fatalf("chain %s: want none, open, uninited, closed or quarantine", w)
	}
	e.chain = ChainObserved{Found: found, Storage: st}
	return nil
}

func cmdFail(e *env, a args) Event {
	err := errors.New(a.kv["err"])
	if a.kv["err"] == "" {
		err = errors.New("it failed")
	}
	switch {
	case a.has("persist"):
		e.disk = e.before
		return PersistFailed{Err: err}
	case a.kv["chain"] != "":
		return ChainFailed{Action: e.lastAction(a.kv["chain"]), Err: err, Unconfirmed: a.has("unconfirmed")}
	case a.kv["send"] != "":
		return SendFailed{Msg: e.lastSent(kindArg(e, a.kv["send"])), Err: err}
	}
	e.fatalf("fail: want persist, chain=NAME or send=KIND")
	return nil
}

func cmdCrash(e *env, a args) Event {
	if a.has("lost") {
		e.disk = e.before
	}
	if a.has("nosemi") && e.disk != nil { // a record of an older version, without the payee's signature
		r := *e.disk
		r.PayeeSemi = [64]byte{}
		e.disk = &r
	}
	e.sent, e.acts = nil, nil
	if e.disk == nil {
		ch, err := New(e.cfg, e.role, e.params)
		if err != nil {
			e.t.Fatal(err)
		}
		e.ch = ch
		e.out.WriteString("resumed: nothing stored\n")
		return nil
	}
	ch, err := Resume(e.cfg, *e.disk)
	if err != nil {
		e.t.Fatal(err)
	}
	e.ch = ch
	fmt.Fprintf(&e.out, "resumed: %s\n", fmtRecord(*e.disk))
	return nil
}

// kindArg reads a message kind by name.
func kindArg(e *env, s string) Kind {
	for k := KindPay; k <= KindAskSettle; k++ {
		if k.String() == s {
			return k
		}
	}
	e.fatalf("unknown message kind %q", s)
	return 0
}

// durWord reads the first bare word as a duration (none: zero).
func (e *env) durWord(a args) time.Duration {
	if len(a.words) == 0 {
		return 0
	}
	d, err := time.ParseDuration(a.words[0])
	if err != nil {
		e.t.Fatal(err)
	}
	return d
}

// voucherArg encodes the voucher S/N in a's key k (absent: nil).
func (e *env) voucherArg(a args, k string) []byte {
	s, ok := a.kv[k]
	if !ok {
		return nil
	}
	return e.voucher(s, a.kv["forge"])
}

// voucherWord encodes the voucher S/N given as the first bare word ("garbage": bytes
// that do not decode; none: nil).
func (e *env) voucherWord(a args) []byte {
	if len(a.words) == 0 {
		return nil
	}
	if a.words[0] == "garbage" {
		return []byte{1, 2, 3}
	}
	return e.voucher(a.words[0], a.kv["forge"])
}

// voucher signs S/N as the payer, or forged: a flipped signature bit, another key, or
// another channel's id.
func (e *env) voucher(s, forge string) []byte {
	seqno, sent, ok := strings.Cut(s, "/")
	if !ok {
		e.fatalf("voucher %q: want SEQNO/SENT", s)
	}
	n, err1 := strconv.ParseUint(seqno, 10, 64)
	m, err2 := strconv.ParseUint(sent, 10, 64)
	if err1 != nil || err2 != nil {
		e.fatalf("voucher %q: want SEQNO/SENT", s)
	}
	key, id := e.keyA, e.params.ChannelID
	switch forge {
	case "key":
		key = e.other
	case "id":
		id[0] ^= 0xff
	}
	v := ton.SignVoucher(key, id, n, m)
	if forge == "sig" {
		v.Signature[5] ^= 1
	}
	b, _ := v.MarshalBinary()
	return b
}

// roleOf reads a role by name.
func roleOf(s string) chanstore.Role {
	if s == "payee" {
		return chanstore.Payee
	}
	return chanstore.Payer
}
