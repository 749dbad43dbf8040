package simulations

import (
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// Scenario is one simulation, as a file in simulations/scenarios/ says it (TOML; the field
// tags are its keys). Load reads one and fills its defaults; every refusal names the key.
type Scenario struct {
	Name        string      `toml:"name"`
	Seed        uint64      `toml:"seed"`         // decides identities, schedules and traffic
	Duration    Duration    `toml:"duration"`     // virtual time simulated
	Warmup      Duration    `toml:"warmup"`       // before traffic starts (default 20s)
	SampleEvery Duration    `toml:"sample_every"` // periodic samples (default 5s)
	Nodes       Counts      `toml:"nodes"`
	Regions     []Region    `toml:"regions"`
	GPU         GPU         `toml:"gpu"`
	Churn       Churn       `toml:"churn"`
	Traffic     Traffic     `toml:"traffic"`
	Adversaries []Adversary `toml:"adversaries"`
	Payments    bool        `toml:"payments"` // payment channels on the embedded ledger (default true)
	// AllDHTServers makes every node a DHT server, as a node's default configuration has it. By
	// default only proxies serve the DHT and workers and clients only ask it, as nodes behind
	// NAT must: a DHT server per node costs most of a small run's CPU (kad-dht's table refresh
	// dials, and answers each other node's lookups).
	AllDHTServers bool `toml:"all_dht_servers"`
	// StartSpread spreads the first workers' and clients' starts uniformly over this much
	// virtual time (0: all at once, a cold boot). Nodes started in one instant advertise in
	// step ever after: their adverts arrive in bursts that overflow gossipsub's validation
	// queue.
	StartSpread Duration `toml:"start_spread"`
}

// Counts are the nodes of each role at the start.
type Counts struct {
	Proxies int `toml:"proxies"`
	Workers int `toml:"workers"`
	Clients int `toml:"clients"`
}

// Region is a part of the world that a share of every role's nodes sits in.
type Region struct {
	Name          string              `toml:"name"`
	Share         float64             `toml:"share"`          // of every role's nodes
	BandwidthMbps float64             `toml:"bandwidth_mbps"` // each node's up and down link (default 100)
	Latency       map[string]Duration `toml:"latency"`        // one way, to each region by name (itself included)
}

// GPU is every honest worker's simulated GPU (backend.SimGPUConfig).
type GPU struct {
	Capacity      int      `toml:"capacity"`       // requests at once (default 16)
	TTFT          Duration `toml:"ttft"`           // fixed cost before the first token (default 50ms)
	PrefillTPS    float64  `toml:"prefill_tps"`    // prompt tokens a second (default 5000)
	DecodeTPS     float64  `toml:"decode_tps"`     // completion tokens a second, one request alone (default 50)
	BatchSlowdown float64  `toml:"batch_slowdown"` // decode slowdown per other running request (default 0.05)
}

// Churn is how the network changes while it runs.
type Churn struct {
	WorkerJoinsPerMin  float64    `toml:"worker_joins_per_min"`  // new honest workers (Poisson)
	WorkerLeavesPerMin float64    `toml:"worker_leaves_per_min"` // workers that leave, saying so (Poisson)
	ProxyCrashes       []Duration `toml:"proxy_crashes"`         // at each, one proxy dies without a word
	ProxyRestart       Duration   `toml:"proxy_restart"`         // a crashed proxy comes back this much later (0: never)
	ProxyJoins         []Duration `toml:"proxy_joins"`           // at each, a new proxy starts (its discovery is timed)
}

// Traffic is what the clients ask, all together.
type Traffic struct {
	Arrival      string       `toml:"arrival"`      // poisson (default) or constant
	RatePerSec   float64      `toml:"rate_per_sec"` // requests a second, over all clients
	Models       []ModelShare `toml:"models"`       // default one model
	PromptTokens Range        `toml:"prompt_tokens"`
	AnswerTokens Range        `toml:"answer_tokens"` // max_tokens asked (the answer is that long)
	StreamShare  float64      `toml:"stream_share"`  // of requests streamed
	MaxPrice     uint64       `toml:"max_price"`     // cap, nanoTON per completion token (0: none)
}

// ModelShare is a model and its share of the workers and of the requests.
type ModelShare struct {
	ID    string  `toml:"id"`
	Share float64 `toml:"share"`
}

// Range is an inclusive range of whole numbers drawn uniformly.
type Range struct {
	Min int `toml:"min"`
	Max int `toml:"max"`
}

// Adversary is a share of the workers (or clients) that misbehave one way.
type Adversary struct {
	Behaviour Behaviour `toml:"behaviour"`
	Fraction  float64   `toml:"fraction"` // of the workers (withhold_payment: of the clients; sybil: added, as a share of the workers)
	Factor    float64   `toml:"factor"`   // slow: times slower; price_raise: quote multiple; capacity_liar: capacity claimed, times the real one
	After     int       `toml:"after"`    // stall: chunks sent before stalling (default 2)
	At        Duration  `toml:"at"`       // sybil: when the flood joins (default: when traffic starts)
	As        Behaviour `toml:"as"`       // sybil: what the fresh identities do (default wrong)
	Spam      int       `toml:"spam"`     // gossip_spam: junk messages with each advert (default 20)
}

// Behaviour is how an adversary misbehaves: a mode of the real node code (node.Faults) or of
// its simulated GPU.
type Behaviour string

// The behaviours.
const (
	Garbage         Behaviour = "garbage"          // answers bytes that do not decode (node.Faults.Garbage)
	Wrong           Behaviour = "wrong"            // answers well-formed wrong words: a cheaper model than it names
	Stall           Behaviour = "stall"            // stops mid-stream, heartbeats too (node.Faults.StallAfter)
	Hang            Behaviour = "hang"             // takes requests and never answers (node.Faults.Hang)
	CapacityLiar    Behaviour = "capacity_liar"    // adverts claim more room than it has (node.Faults.ClaimCapacity)
	Slow            Behaviour = "slow"             // runs slower than its adverts claim (node.Faults.ClaimTokensPerSec)
	PriceRaise      Behaviour = "price_raise"      // quotes above its advertised prices once routed (node.Faults.QuoteFactor)
	WithholdPayment Behaviour = "withhold_payment" // a client that never sends its vouchers (node.Faults.WithholdPayment)
	Sybil           Behaviour = "sybil"            // a flood of fresh worker identities, all joining at once
	GossipSpam      Behaviour = "gossip_spam"      // publishes junk on the capacity topic (node.Faults.SpamAdverts)
)

var behaviours = []Behaviour{Garbage, Wrong, Stall, Hang, CapacityLiar, Slow, PriceRaise, WithholdPayment, Sybil, GossipSpam}

// Duration is a time.Duration written as Go writes one ("90s", "10m").
type Duration struct{ time.Duration }

// UnmarshalText reads a duration.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a duration (write it as 90s, 10m or 1h30m)", b)
	}
	d.Duration = v
	return nil
}

// MarshalText writes a duration.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// Load reads the scenario in path, with Override's sets applied.
func Load(path string, sets ...string) (*Scenario, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if b, err = Override(b, sets); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	s, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// Override sets keys of a scenario's TOML before it is parsed: each of sets is
// "dotted.key=value", value written as in TOML ("16", "\"2m\"", "[\"1m\"]"). A sweep
// varies a scenario this way. The scenario's name gets the settings appended.
func Override(b []byte, sets []string) ([]byte, error) {
	if len(sets) == 0 {
		return b, nil
	}
	var m map[string]any
	if _, err := toml.Decode(string(b), &m); err != nil {
		return nil, fmt.Errorf("scenario: %w", err)
	}
	name, _ := m["name"].(string)
	for _, set := range sets {
		key, val, ok := strings.Cut(set, "=")
		if !ok || key == "" {
			return nil, fmt.Errorf("scenario: setting %q: write it as dotted.key=value", set)
		}
		var v map[string]any
		if _, err := toml.Decode("v = "+val, &v); err != nil {
			return nil, fmt.Errorf("scenario: setting %s: %q is not a TOML value (quote strings and durations: \"2m\")", key, val)
		}
		if err := setPath(m, strings.Split(key, "."), v["v"]); err != nil {
			return nil, fmt.Errorf("scenario: setting %s: %w", key, err)
		}
		name += "_" + strings.NewReplacer(".", "-", "\"", "", " ", "", ",", "-", "[", "", "]", "").Replace(key+"-"+val)
	}
	if _, set := m["name"]; set || name != "" {
		m["name"] = name
	}
	var out strings.Builder
	if err := toml.NewEncoder(&out).Encode(m); err != nil {
		return nil, err
	}
	return []byte(out.String()), nil
}

// setPath sets m's value at path, making the tables on the way.
func setPath(m map[string]any, path []string, v any) error {
	for _, k := range path[:len(path)-1] {
		next, ok := m[k].(map[string]any)
		if !ok {
			if _, exists := m[k]; exists {
				return fmt.Errorf("%s is not a table", k)
			}
			next = map[string]any{}
			m[k] = next
		}
		m = next
	}
	m[path[len(path)-1]] = v
	return nil
}

// Parse reads a scenario from TOML, fills its defaults and checks it.
func Parse(b []byte) (*Scenario, error) {
	s := &Scenario{Payments: true}
	md, err := toml.Decode(string(b), s)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("scenario: %s", pe.ErrorWithPosition())
		}
		return nil, fmt.Errorf("scenario: %w", err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		return nil, fmt.Errorf("scenario: unknown key %s (see simulations/scenarios/README.md for the keys)", strings.Join(keys, ", "))
	}
	s.fill()
	if err := s.check(); err != nil {
		return nil, err
	}
	return s, nil
}

// fill sets the defaults of fields left out.
func (s *Scenario) fill() {
	def := func(d *Duration, v time.Duration) {
		if d.Duration == 0 {
			d.Duration = v
		}
	}
	def(&s.Warmup, 20*time.Second)
	def(&s.SampleEvery, 5*time.Second)
	def(&s.GPU.TTFT, 50*time.Millisecond)
	if s.GPU.Capacity == 0 {
		s.GPU.Capacity = 16
	}
	if len(s.Regions) == 0 {
		s.Regions = []Region{{Name: "local", Share: 1, Latency: map[string]Duration{"local": {5 * time.Millisecond}}}}
	}
	for i := range s.Regions {
		if s.Regions[i].BandwidthMbps == 0 {
			s.Regions[i].BandwidthMbps = 100
		}
	}
	t := &s.Traffic
	if t.Arrival == "" {
		t.Arrival = "poisson"
	}
	if len(t.Models) == 0 {
		t.Models = []ModelShare{{ID: "sim-7b@v1:0000", Share: 1}}
	}
	if t.PromptTokens == (Range{}) {
		t.PromptTokens = Range{Min: 20, Max: 200}
	}
	if t.AnswerTokens == (Range{}) {
		t.AnswerTokens = Range{Min: 16, Max: 64}
	}
	for i := range s.Adversaries {
		a := &s.Adversaries[i]
		switch {
		case a.Behaviour == Stall && a.After == 0:
			a.After = 2
		case a.Behaviour == Sybil && a.As == "":
			a.As = Wrong
		case a.Behaviour == GossipSpam && a.Spam == 0:
			a.Spam = 20
		}
		if a.Factor == 0 {
			a.Factor = map[Behaviour]float64{Slow: 4, PriceRaise: 3, CapacityLiar: 8}[a.Behaviour]
		}
	}
}

// check refuses what cannot be simulated, naming the key.
func (s *Scenario) check() error {
	bad := func(key string, v any, why string) error {
		return fmt.Errorf("scenario: %s = %v: %s", key, v, why)
	}
	switch {
	case s.Name == "" || strings.ContainsAny(s.Name, "/\\ ;=,"):
		return bad("name", fmt.Sprintf("%q", s.Name), "give the scenario a name without spaces, slashes, ';', '=' or ','")
	case s.Duration.Duration <= 0:
		return bad("duration", s.Duration, "say how much virtual time to simulate, for example \"10m\"")
	case s.Warmup.Duration < 0 || s.Warmup.Duration >= s.Duration.Duration:
		return bad("warmup", s.Warmup, "must be shorter than duration")
	case s.StartSpread.Duration < 0 || s.StartSpread.Duration >= s.Warmup.Duration && s.StartSpread.Duration > 0:
		return bad("start_spread", s.StartSpread, "must be shorter than warmup, so that every node is up when traffic starts")
	case s.SampleEvery.Duration < 100*time.Millisecond:
		return bad("sample_every", s.SampleEvery, "must be at least 100ms")
	case s.Nodes.Proxies < 1:
		return bad("nodes.proxies", s.Nodes.Proxies, "need at least one proxy")
	case s.Nodes.Workers < 1:
		return bad("nodes.workers", s.Nodes.Workers, "need at least one worker")
	case s.Nodes.Clients < 1:
		return bad("nodes.clients", s.Nodes.Clients, "need at least one client")
	case s.Nodes.Proxies+s.Nodes.Workers+s.Nodes.Clients > 20000:
		return bad("nodes", s.Nodes.Proxies+s.Nodes.Workers+s.Nodes.Clients, "at most 20000 nodes in one process")
	}
	if err := s.checkRegions(bad); err != nil {
		return err
	}
	if err := s.checkGPU(bad); err != nil {
		return err
	}
	if err := s.checkChurn(bad); err != nil {
		return err
	}
	if err := s.checkTraffic(bad); err != nil {
		return err
	}
	return s.checkAdversaries(bad)
}

type badFunc func(key string, v any, why string) error

func (s *Scenario) checkRegions(bad badFunc) error {
	sum := 0.0
	names := map[string]bool{}
	for i, r := range s.Regions {
		key := fmt.Sprintf("regions[%d]", i)
		switch {
		case r.Name == "" || names[r.Name]:
			return bad(key+".name", fmt.Sprintf("%q", r.Name), "each region needs a name of its own")
		case r.Share <= 0 || r.Share > 1:
			return bad(key+".share", r.Share, "must be in (0, 1]")
		case r.BandwidthMbps <= 0:
			return bad(key+".bandwidth_mbps", r.BandwidthMbps, "must be above 0")
		}
		names[r.Name] = true
		sum += r.Share
	}
	if math.Abs(sum-1) > 1e-6 {
		return bad("regions.share", sum, "the regions' shares must add up to 1")
	}
	for i, r := range s.Regions {
		for _, o := range s.Regions {
			d, ok := r.Latency[o.Name]
			if !ok {
				return bad(fmt.Sprintf("regions[%d].latency.%s", i, o.Name), "missing", "give the one-way latency to every region, itself included")
			}
			if d.Duration < 0 || d.Duration > 10*time.Second {
				return bad(fmt.Sprintf("regions[%d].latency.%s", i, o.Name), d, "must be between 0 and 10s")
			}
		}
		for k := range r.Latency {
			if !names[k] {
				return bad(fmt.Sprintf("regions[%d].latency.%s", i, k), "", "no region has that name")
			}
		}
	}
	return nil
}

func (s *Scenario) checkGPU(bad badFunc) error {
	g := s.GPU
	switch {
	case g.Capacity < 1 || g.Capacity > 1024:
		return bad("gpu.capacity", g.Capacity, "must be between 1 and 1024")
	case g.TTFT.Duration < 0:
		return bad("gpu.ttft", g.TTFT, "must not be negative")
	case g.PrefillTPS < 0:
		return bad("gpu.prefill_tps", g.PrefillTPS, "must not be negative (0: the default)")
	case g.DecodeTPS < 0:
		return bad("gpu.decode_tps", g.DecodeTPS, "must not be negative (0: the default)")
	case g.BatchSlowdown < 0:
		return bad("gpu.batch_slowdown", g.BatchSlowdown, "must not be negative")
	}
	return nil
}

func (s *Scenario) checkChurn(bad badFunc) error {
	c := s.Churn
	switch {
	case c.WorkerJoinsPerMin < 0:
		return bad("churn.worker_joins_per_min", c.WorkerJoinsPerMin, "must not be negative")
	case c.WorkerLeavesPerMin < 0:
		return bad("churn.worker_leaves_per_min", c.WorkerLeavesPerMin, "must not be negative")
	case c.ProxyRestart.Duration < 0:
		return bad("churn.proxy_restart", c.ProxyRestart, "must not be negative")
	case len(c.ProxyCrashes) >= s.Nodes.Proxies && c.ProxyRestart.Duration == 0:
		return bad("churn.proxy_crashes", len(c.ProxyCrashes), "crashing every proxy for good leaves no network: crash fewer, or set churn.proxy_restart")
	}
	for i, d := range slices.Concat(c.ProxyCrashes, c.ProxyJoins) {
		if d.Duration <= 0 || d.Duration >= s.Duration.Duration {
			key := fmt.Sprintf("churn.proxy_crashes[%d]", i)
			if i >= len(c.ProxyCrashes) {
				key = fmt.Sprintf("churn.proxy_joins[%d]", i-len(c.ProxyCrashes))
			}
			return bad(key, d, "must fall inside the run (0, duration)")
		}
	}
	return nil
}

func (s *Scenario) checkTraffic(bad badFunc) error {
	t := s.Traffic
	switch {
	case t.Arrival != "poisson" && t.Arrival != "constant":
		return bad("traffic.arrival", fmt.Sprintf("%q", t.Arrival), "must be \"poisson\" or \"constant\"")
	case t.RatePerSec <= 0 || t.RatePerSec > 10000:
		return bad("traffic.rate_per_sec", t.RatePerSec, "must be in (0, 10000]")
	case t.PromptTokens.Min < 1 || t.PromptTokens.Max < t.PromptTokens.Min || t.PromptTokens.Max > 100000:
		return bad("traffic.prompt_tokens", fmt.Sprintf("%d..%d", t.PromptTokens.Min, t.PromptTokens.Max), "need 1 <= min <= max <= 100000")
	case t.AnswerTokens.Min < 1 || t.AnswerTokens.Max < t.AnswerTokens.Min || t.AnswerTokens.Max > 32768:
		return bad("traffic.answer_tokens", fmt.Sprintf("%d..%d", t.AnswerTokens.Min, t.AnswerTokens.Max), "need 1 <= min <= max <= 32768")
	case t.StreamShare < 0 || t.StreamShare > 1:
		return bad("traffic.stream_share", t.StreamShare, "must be in [0, 1]")
	}
	sum := 0.0
	for i, m := range t.Models {
		if m.ID == "" || m.Share <= 0 {
			return bad(fmt.Sprintf("traffic.models[%d]", i), fmt.Sprintf("%q share %v", m.ID, m.Share), "each model needs an id and a share above 0")
		}
		sum += m.Share
	}
	if math.Abs(sum-1) > 1e-6 {
		return bad("traffic.models.share", sum, "the models' shares must add up to 1")
	}
	return nil
}

func (s *Scenario) checkAdversaries(bad badFunc) error {
	workers := 0.0
	for i, a := range s.Adversaries {
		key := fmt.Sprintf("adversaries[%d]", i)
		switch {
		case !slices.Contains(behaviours, a.Behaviour):
			return bad(key+".behaviour", fmt.Sprintf("%q", a.Behaviour), fmt.Sprintf("must be one of %v", behaviours))
		case a.Fraction <= 0 || a.Fraction > 1 && a.Behaviour != Sybil || a.Fraction > 10:
			return bad(key+".fraction", a.Fraction, "must be in (0, 1] (sybil: up to 10, as a share of the workers)")
		case a.Behaviour == Sybil && (a.As == Sybil || a.As == WithholdPayment || !slices.Contains(behaviours, a.As)):
			return bad(key+".as", fmt.Sprintf("%q", a.As), "a sybil acts as one of the worker behaviours")
		case a.Behaviour == Sybil && (a.At.Duration < 0 || a.At.Duration >= s.Duration.Duration):
			return bad(key+".at", a.At, "must fall inside the run")
		case a.Behaviour == Stall && a.After < 1:
			return bad(key+".after", a.After, "must be at least 1 chunk")
		case (a.Behaviour == Slow || a.Behaviour == PriceRaise || a.Behaviour == CapacityLiar) && a.Factor <= 1:
			return bad(key+".factor", a.Factor, "must be above 1")
		case a.Behaviour == GossipSpam && (a.Spam < 1 || a.Spam > 1000):
			return bad(key+".spam", a.Spam, "must be between 1 and 1000")
		}
		if a.Behaviour != WithholdPayment && a.Behaviour != Sybil {
			workers += a.Fraction
		}
	}
	if workers > 1+1e-9 {
		return bad("adversaries.fraction", workers, "the worker adversaries' fractions add up to more than 1")
	}
	return nil
}
