package node

import (
	"math"
	"math/big"
	"testing"
)

// A client's cap on what it pays becomes a cap on the worker's price, the commission taken off,
// without overflow and never 0 (no cap).
func TestWorkerCap(t *testing.T) {
	n := &Node{cfg: Config{Payments: PaymentConfig{Commission: 50}}}
	huge := new(big.Int).SetUint64(math.MaxUint64)
	huge.Mul(huge, big.NewInt(1000)).Quo(huge, big.NewInt(1050))
	for _, c := range []struct{ client, worker uint64 }{
		{0, 0}, {1, 1}, {1050, 1000}, {1049, 999}, {math.MaxUint64, huge.Uint64()},
	} {
		if got := n.cfg.workerCap(c.client); got != c.worker {
			t.Errorf("workerCap(%d) = %d, want %d", c.client, got, c.worker)
		}
	}
}
