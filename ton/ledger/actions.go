package ledger

import (
	"fmt"

	"github.com/xssnick/tonutils-go/address"
	"github.com/xssnick/tonutils-go/tvm/cell"
)

// Out-action tags and send-mode flags (TL-B action_send_msg#0ec3c86d mode:(## 8) out_msg:^MessageRelaxed).
const (
	actionSendMsg       = 0x0ec3c86d
	maxActions          = 255 // the action phase's limit on real TON
	modePayFeesSep      = 1
	modeIgnoreErrors    = 2
	modeCarryAllBalance = 128
	supportedModes      = modePayFeesSep | modeIgnoreErrors | modeCarryAllBalance
)

// sendMsg is one parsed action_send_msg: an internal message carrying grams to dest.
type sendMsg struct {
	mode   uint8
	dest   *address.Address
	amount uint64
}

// parseActions reads the out-action list (a linked list, newest first) into send actions,
// oldest first. It refuses any action, mode or message shape that applyActions does not model.
func parseActions(list *cell.Cell) ([]sendMsg, error) {
	var out []sendMsg
	for list != nil && (list.BitsSize() > 0 || list.RefsNum() > 0) {
		if len(out) == maxActions {
			return nil, fmt.Errorf("%w: more than %d actions", ErrActions, maxActions)
		}
		s, err := list.BeginParse()
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrActions, err)
		}
		prev, err := s.LoadRefCell()
		if err != nil {
			return nil, fmt.Errorf("%w: action list: %v", ErrActions, err)
		}
		a, err := parseSend(s)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
		list = prev
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}

func parseSend(s *cell.Slice) (sendMsg, error) {
	fail := func(what string, err error) (sendMsg, error) {
		return sendMsg{}, fmt.Errorf("%w: %s: %v", ErrActions, what, err)
	}
	tag, err := s.LoadUInt(32)
	if err != nil {
		return fail("action tag", err)
	}
	if tag != actionSendMsg {
		return fail("action", fmt.Errorf("unsupported action %#x (only send_msg is modelled)", tag))
	}
	mode, err := s.LoadUInt(8)
	if err != nil {
		return fail("send mode", err)
	}
	if mode&^supportedModes != 0 {
		return fail("send mode", fmt.Errorf("mode %d uses flags other than 1, 2 and 128", mode))
	}
	m, err := s.LoadRef()
	if err != nil {
		return fail("out message", err)
	}
	if ext, err := m.LoadUInt(1); err != nil || ext != 0 {
		return fail("out message", fmt.Errorf("not an internal message (%v)", err))
	}
	if _, err := m.LoadUInt(3); err != nil { // ihr_disabled bounce bounced
		return fail("out message flags", err)
	}
	if _, err := m.LoadAddr(); err != nil { // src: filled in by the chain
		return fail("out message source", err)
	}
	dest, err := m.LoadAddr()
	if err != nil {
		return fail("out message destination", err)
	}
	amount, err := m.LoadCoins()
	if err != nil {
		return fail("out message value", err)
	}
	if extra, err := m.LoadUInt(1); err != nil || extra != 0 {
		return fail("out message value", fmt.Errorf("extra currencies are not modelled (%v)", err))
	}
	return sendMsg{mode: uint8(mode), dest: dest, amount: amount}, nil
}
