package chanstore

import "github.com/cocoon-mesh/cocoon/ton"

// Reconcile merges a side's local record with the voucher the other side presents after a
// restart; the higher valid state wins. It returns the record to resume from and whether it
// differs from local (the caller must then Put it before acting on it). It is pure: verify is
// the only check it does not do itself, and Record.VerifyVoucher is the usual one.
//
// The rule, the same for both roles: theirs wins only if verify accepts it (it carries the
// payer's own signature on this channel), its seqno is at most ton.MaxVoucherSeqno, and it is
// higher than the local voucher: a higher seqno with a sent no lower, or the same seqno with a
// higher sent (local has no voucher: any valid one is higher). So a payer resumes above the
// payee's latest voucher (it must never reuse that seqno nor sign below that sent), and a payee
// keeps the higher of its record and what the payer presents. A payee additionally refuses what
// it could not enforce on chain, as ton.Payee.Accept does: a sent above Limit or a seqno below
// CommittedSeqno. A voucher with a higher seqno but a lower sent is never adopted: within one
// deposit seqno and sent rise together, so it is not a state this side should resume from.
func Reconcile(local Record, theirs ton.Voucher, verify func(ton.Voucher) bool) (Record, bool) {
	if theirs.Seqno > ton.MaxVoucherSeqno {
		return local, false
	}
	if local.HasVoucher {
		l := local.Voucher
		higher := (theirs.Seqno > l.Seqno && theirs.Sent >= l.Sent) ||
			(theirs.Seqno == l.Seqno && theirs.Sent > l.Sent)
		if !higher {
			return local, false
		}
	}
	if local.Role == Payee && (theirs.Sent > local.Limit || theirs.Seqno < local.CommittedSeqno) {
		return local, false
	}
	if verify == nil || !verify(theirs) {
		return local, false
	}
	local.Voucher, local.HasVoucher = theirs, true
	return local, true
}
