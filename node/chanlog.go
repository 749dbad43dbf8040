package node

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/cocoon-mesh/cocoon/ton/channel"
	"github.com/cocoon-mesh/cocoon/ton/chanstore"
	"github.com/cocoon-mesh/cocoon/ton/ledger"
)

// notes logs what a step of ev did, as the node's log lines say it.
func (o *chanOwner) notes(ev channel.Event, notes []channel.Note) {
	if len(notes) == 0 || o.cs.ctx.Err() != nil {
		return
	}
	log := o.cs.log.With(o.other(), o.peer.String(), "channel_id", fmt.Sprintf("%x", o.key.id[:]))
	rec := o.ch.Record()
	for _, n := range notes {
		switch n.What {
		case channel.NoteOpened:
			if o.out != nil {
				log.Info("paying on channel", "deposit", rec.Limit, "paid", rec.Voucher.Sent)
			} else {
				log.Info("payment channel opened by payer", "channel", o.addr.String(), "deposit", n.Amount)
			}
		case channel.NoteOpenFailed:
			if errors.Is(n.Err, ledger.ErrUnconfirmed) {
				log.Warn("a channel's deployment was not confirmed; keeping its record", "channel", o.addr.String(), "err", n.Err)
			} // else the opening fails with it
		case channel.NoteCutShort:
			log.Warn("a channel we opened is not on chain: its opening was cut short; using another")
		case channel.NoteResumedAbove:
			log.Warn("resumed payment channel above the payee's newer voucher", "sent", n.Amount)
		case channel.NotePayFailed:
			log.Warn("cannot pay ahead on channel", "err", n.Err)
		case channel.NoteVoucherRefused:
			log.Warn("payer presented a voucher that does not check", "err", n.Err)
		case channel.NoteWrittenOff:
			log.Info("wrote off value the payer never received", "nanoton", n.Amount,
				"written_off", o.ch.Counts().WrittenOff, "why", writeOffWhy(ev))
		case channel.NoteDisputed:
			log.Warn("payer disputes more than this node takes on trust: not writing off", "owed", n.Amount, "err", n.Err,
				"hint", "it stays owed: the payer must pay it (its answers wait for payment meanwhile)")
		default:
			o.closeNote(log, n, rec)
		}
	}
}

// closeNote logs a note of a close, or of the watch.
func (o *chanOwner) closeNote(log *slog.Logger, n channel.Note, rec chanstore.Record) {
	switch n.What {
	case channel.NoteCosigned:
		log.Info("co-signed the close of a payment channel", "paid", n.Amount)
	case channel.NoteClosing:
		log.Warn(fmt.Sprintf("the %s did not close the channel with us; closing alone", o.other()), "err", n.Err)
	case channel.NotePeerClosingAlone:
		log.Warn("the other side started closing a payment channel alone", "role", o.key.role.String(), "channel", o.addr.String())
	case channel.NoteSoloStarted:
		log.Warn("started closing a payment channel alone; it pays out after the quarantine", "channel", o.addr.String(),
			"paid", n.Amount, "quarantine", time.Duration(rec.Closing.QuarantineDuration)*time.Second)
	case channel.NoteChallenged:
		log.Warn("the payer is closing with an older state; challenged with our newest", "channel", o.addr.String(), "our_sent", n.Amount)
	case channel.NoteCloseFailed:
		log.Warn("cannot close the payment channel; the watch retries", "err", n.Err)
	case channel.NoteClosed:
		log.Info("payment channel closed", "role", o.key.role.String(), "channel", o.addr.String(), "paid", n.Amount)
	case channel.NoteIdle:
		log.Info("closing an idle payment channel", "role", o.key.role.String(), "paid", n.Amount)
	case channel.NoteStalled:
		log.Warn("resuming a stalled close of a payment channel", "role", o.key.role.String(), "closing_since", rec.Updated)
	case channel.NoteSettleFailed:
		log.Warn("cannot pay on channel", "err", n.Err)
	}
}

// writeOffWhy says what made the payer's word a write-off.
func writeOffWhy(ev channel.Event) string {
	switch ev := ev.(type) {
	case channel.Announced:
		return "the payer resumed the channel after a restart"
	case channel.Settled:
		if ev.OnChannel {
			return "the payer settled after refusing an answer"
		}
	}
	return "the payer settled a bill"
}

// other names the other side of the channel: "payee" for a payer's, "payer" for a payee's.
func (o *chanOwner) other() string {
	if o.key.role == chanstore.Payer {
		return "payee"
	}
	return "payer"
}
