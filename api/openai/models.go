package openai

import (
	"net/http"

	"github.com/cocoon-mesh/cocoon/api/httpguard"
	"github.com/cocoon-mesh/cocoon/node/wire"
)

// modelEntry is one model in /v1/models, with the mesh's extra fields. Prices are those of
// the cheapest worker serving the model, as this client pays them: with the commission of the
// dearest proxy it pays, once it has learned it (when opening a channel).
type modelEntry struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
	// MinPrice is what a completion token costs this client, nanoTON: what X-Cocoon-Max-Price caps.
	MinPrice uint64 `json:"cocoon_min_price_nanoton"`
	Workers  int    `json:"cocoon_workers"`
	// Prices is what one token of each category costs this client, nanoTON.
	Prices priceList `json:"cocoon_prices"`
	// WorkerPrices, Coefficient and Commission are what Prices are made of: the worker's list
	// prices, the per-mille coefficient it applies to them, and the proxy's per-mille
	// commission on top (absent while no proxy's is known).
	WorkerPrices priceList `json:"cocoon_worker_prices"`
	Coefficient  uint32    `json:"cocoon_worker_coefficient"`
	Commission   *uint32   `json:"cocoon_proxy_commission,omitempty"`
}

// priceList is nanoTON per token by category.
type priceList struct {
	Prompt     uint64 `json:"prompt"`
	Cached     uint64 `json:"cached"`
	Completion uint64 `json:"completion"`
	Reasoning  uint64 `json:"reasoning"`
}

func listOf(p wire.Prices) priceList { return priceList{p.Prompt, p.Cached, p.Completion, p.Reasoning} }

// handleModels lists the models the mesh offers, with what they cost this client (node.Prices).
func (f *Face) handleModels(w http.ResponseWriter, _ *http.Request) {
	prices := f.n.Prices()
	data := make([]modelEntry, 0, len(prices))
	for _, p := range prices {
		e := modelEntry{ID: p.Model, Object: "model", OwnedBy: "cocoon-mesh", Workers: p.Workers,
			WorkerPrices: listOf(p.Worker), Coefficient: p.Coefficient,
			Prices: listOf(p.PerToken), MinPrice: p.PerToken.Completion}
		if p.CommissionKnown {
			c := p.Commission
			e.Commission = &c
		}
		data = append(data, e)
	}
	httpguard.WriteJSON(w, http.StatusOK, map[string]any{"object": "list", "data": data})
}
