package node

import (
	"context"
	"errors"

	"github.com/libp2p/go-libp2p/core/peer"
)

// OpenChannel opens the channel this node pays peer p on, or resumes the open one, and
// returns it. Channels open by themselves on first contact; this is for operators.
func (n *Node) OpenChannel(ctx context.Context, p peer.ID) (ChannelStatus, error) {
	return ChannelStatus{}, errors.New("not built yet")
}

// TopUpChannel moves the payments to p onto a freshly funded channel and closes the old one
// cooperatively once its answers are paid (the contract takes no deposit after init).
func (n *Node) TopUpChannel(ctx context.Context, p peer.ID) (ChannelStatus, error) {
	return ChannelStatus{}, errors.New("not built yet")
}

// CloseChannel closes this node's open channel with p, whichever side pays, and returns it as
// it ends. Cooperative by default: both sides sign the final balances and the contract pays
// out at once. With force, or when p does not answer, it closes alone: it starts an
// uncooperative close with the newest state it holds and finishes it after the quarantine.
func (n *Node) CloseChannel(ctx context.Context, p peer.ID, force bool) (ChannelStatus, error) {
	return ChannelStatus{}, errors.New("not built yet")
}
