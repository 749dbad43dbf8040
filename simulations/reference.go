package simulations

import (
	"context"
	"sync"

	"github.com/cocoon-mesh/cocoon/node/backend"
)

// reference is a proxy's own run of the pinned models (node.Deps.Reference), with which it
// audits its workers: for each model, the GPU every honest worker of it has (honestSeed),
// answering at once, since a proxy's reference run is not what a scenario measures.
type reference struct {
	mu   sync.Mutex
	gpus map[string]*backend.SimGPU
}

func newReference() *reference { return &reference{gpus: map[string]*backend.SimGPU{}} }

// Generate answers r as the honest GPU of r.Model does.
func (ref *reference) Generate(ctx context.Context, r backend.Request, emit func(backend.Chunk) error) (backend.Usage, error) {
	ref.mu.Lock()
	g := ref.gpus[r.Model]
	if g == nil {
		g = backend.NewSimGPU(backend.SimGPUConfig{ModelID: r.Model, Seed: honestSeed(r.Model), MaxActive: 1 << 20,
			PrefillTokensPerSec: 1e12, DecodeTokensPerSec: 1e12, BatchSlowdown: -1})
		ref.gpus[r.Model] = g
	}
	ref.mu.Unlock()
	return g.Generate(ctx, r, emit)
}

// Health reports the reference ready.
func (ref *reference) Health(context.Context) error { return nil }
