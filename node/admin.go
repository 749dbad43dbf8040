package node

import (
	"context"
	"errors"
)

// What the operator endpoints (package api/admin) serve besides Status and the channel
// commands (OpenChannel, TopUpChannel, CloseChannel, Channels).

// PaymentsOn reports whether the node pays and is paid over channels (it was given a ledger).
func (n *Node) PaymentsOn() bool { return n.payments != nil }

// WalletStatus is the node's TON wallet, as GET /cocoon/v1/wallet shows it.
type WalletStatus struct {
	Address string `json:"address"`
	Balance uint64 `json:"balance"` // nanoTON, as the node's ledger reads it now
}

// Wallet reads the balance of the node's wallet on its ledger.
func (n *Node) Wallet(ctx context.Context) (WalletStatus, error) {
	if n.payments == nil {
		return WalletStatus{}, errors.New("payments are off: the node has no wallet in use")
	}
	bal, err := n.payments.ledger.Balance(ctx, n.payments.wallet)
	if err != nil {
		return WalletStatus{}, err
	}
	return WalletStatus{Address: n.payments.wallet.String(), Balance: bal}, nil
}
