package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// defaultConfig is what `cocoon-node init` writes: every setting, its default, and what it does.
// A test parses it, so it cannot drift from the config format.
const defaultConfig = `# Cocoon mesh node configuration (TOML). Command-line flags override these values.

# What this node does: "client" (serves the OpenAI API to your apps), "proxy" (routes requests
# from clients to workers and keeps a commission), or "worker" (runs a model and earns TON).
role = "{{role}}"

# The mesh to join. Nodes of different networks never meet.
network = "cocoon-mainnet"

# Where the node keeps its datastore (its identity key lives there). Default: ~/.cocoon
# data_dir = "/var/lib/cocoon"

# libp2p listen addresses, TCP and QUIC.
listen = ["/ip4/0.0.0.0/tcp/4001", "/ip4/0.0.0.0/udp/4001/quic-v1"]

# Peers to join the mesh through: multiaddrs ending in /p2p/<peer id>. Any node can be one.
bootstrap = []

# "server" answers DHT queries for others (required for proxies and bootstrap peers);
# "client" only asks (for nodes others cannot dial).
dht_mode = "server"

# How many proxies a client or worker stays connected to.
min_proxies = 2

# Fast discovery and adverts, for a network on one machine.
local = false

# debug, info, warn or error.
log_level = "info"
# One info line per finished request on clients and proxies: id, model, peer, tokens, cost,
# duration, time to first token, outcome.
request_log = true

[client]
# The OpenAI-compatible API: point any OpenAI SDK at http://<api_addr>/v1
api_addr = "127.0.0.1:10000"
# If set, callers must send "Authorization: Bearer <api_key>". Without it, anything that can
# reach api_addr can ask for paid completions; channel and wallet commands always want this key
# or the node's local token (see [http]).
api_key = ""
# Highest effective price accepted, nanoTON per completion token (0: no cap).
max_price = 0
# Prompts are sealed to the attested worker chosen for each request, so the proxy forwards
# ciphertext it cannot read. true sends them in the clear (only to measure what sealing costs).
disable_sealing = false

[admin]
# Where the node serves its status and payment-channel commands over HTTP, as host:port
# (GET /cocoon/v1/status, GET /cocoon/v1/channels, POST /cocoon/v1/channels/<peer>/open|topup|close;
# 'cocoon-node channels --node http://<addr>' calls them). For proxies and workers, which have
# no other HTTP server; a client serves them on its API too. Empty: off. The commands move
# money: keep this on loopback, and set api_key if others can reach it.
addr = ""
# If set, callers must send "Authorization: Bearer <api_key>". A node has one key: on a client
# this is [client] api_key (set either; if both, the same).
api_key = ""

[http]
# Guards of the client API and the admin endpoints against web pages and slow clients.
# A request's Host must name the node: its listen address, or localhost, 127.0.0.1 or [::1] at
# its port (a web page that reaches it under a name of its own is refused: DNS rebinding). To
# call it under other names (listening beyond loopback, behind a proxy), list them here, as
# "name" (any port) or "name:port"; "*" allows any Host.
allowed_hosts = []
# Web origins (scheme://host[:port]) whose pages may call the node from a browser; requests
# with any other Origin header are refused before any work is done. An origin listed here can
# spend the node's money: list only your own apps. "*" allows every web page.
allowed_origins = []
# POSTs must send "Content-Type: application/json". Channel and wallet commands want the API key
# or the local token, a secret the node writes to local-token in its data dir when it first
# starts ('cocoon-node channels|wallet --node URL' reads it there; --data-dir if not ~/.cocoon).
# Open connections per server: at the cap, the one idle longest makes room for a new one; when
# all are busy, new ones get 503. Keep it well below the file descriptor limit (ulimit -n).
max_conns = 512
# How long a request body may take to arrive; how long each write of an answer may take (a
# streamed answer may last longer: the deadline moves on with every chunk); how long a
# kept-alive connection waits for its next request. Request headers get 10s.
body_timeout = "30s"
write_timeout = "1m"
idle_timeout = "1m"

[payments]
# Where channel money lives: a development ledger served by 'cocoon-node ledger' (ledger, a
# URL), or real TON (ton_config, a liteserver global config URL or file). Neither: payments off.
ledger = ""
ton_config = ""
testnet = false
# Development ledger only: have its faucet fund this node's wallet with this many nanoTON.
dev_fund = 0
# The most a payer locks in one channel, nanoTON (1 TON). Under a quarter left, it moves to a
# new channel and closes the old one.
deposit = 1000000000
# Deposits follow trust: the first channel to a payee locks first_deposit (deposit/100 unless
# set: 0.01 TON), each later one twice what the payee earned before, up to deposit. A proxy
# opens a worker's channel with the first request it routes there. Channels to payees that
# have earned nothing lock at most unearned_cap together (16 x first_deposit unless set), and
# are closed after unearned_idle without a voucher, so a flood of fresh worker identities
# cannot lock this node's wallet. (An operator's 'channels open' or 'topup' locks deposit.)
first_deposit = 0
unearned_cap = 0
unearned_idle = "1h"
# A payee's credit window, in completion tokens at each answer's price: it stops serving a payer
# that owes more. Larger windows wait less for vouchers and risk more; a channel carrying many
# answers at once can outgrow this one (the log says when answers wait for payment).
window_tokens = 256
# A proxy's commission on workers' prices, per mille.
commission = 50
# The closing config of channels paying this node: how long a unilateral close waits for a
# challenge (this node must come online within it), then for conditionals.
quarantine = "12h"
conditional_close = "1m"
# How often the node reads its unclosed channels' contracts (one ledger read each): to notice
# closes, challenge an older state, finish a close after its quarantine, and resume a close
# that stalled (after 2 periods for a payer, 4 for a payee).
watch_every = "10m"
# A channel paying this node that goes this long without a new voucher is closed, so that what
# it earned reaches the wallet even if its payer went away (the payer reopens when it needs to);
# a channel this node pays on is closed after twice as long, to get its deposit back.
settle_idle = "168h"
# nanoTON sent for gas with a unilateral close or a challenge; the rest is paid out with the channel.
dispute_fee = 20000000

[tee]
# What this node runs in: "none" (no attestation), "tdx" (an Intel TDX guest: quotes come from
# configfs-tsm or /dev/tdx_guest), or "simulated" (INSECURE fake evidence, for development).
provider = "none"
# Which peers' attestation this node trusts. Proxies route only to workers whose attestation
# passes; clients seal prompts only to such workers.
# INSECURE: accept simulated evidence. Only for development networks.
allow_simulated = false
# Accept workers that offer no attestation at all (prompts then travel in the clear).
allow_unattested = false
# Allowed TD images, as hex SHA-256 image hashes over MRTD, MRCONFIGID, MROWNER, MROWNERCONFIG
# and RTMR0-3 (empty: any image), and allowed MRTD values (empty: any).
allowed_images = []
allowed_mrtd = []
# Worst TCB status accepted: UpToDate, SWHardeningNeeded, ConfigurationNeeded, ... (see Intel's
# TCB info). Debug TDs are refused unless allow_debug is set.
min_tcb = "UpToDate"
allow_debug = false
# Where TDX collateral (TCB info, QE identity, CRLs) is fetched from: a PCCS base URL, or
# empty for Intel's PCS. Collateral is cached in the datastore and used offline while valid.
pccs_url = ""
# Verify quotes' signatures and chain only, without collateral (the TCB status stays unknown;
# min_tcb must then be unset).
no_collateral = false
# How long a peer's verified attestation is used before it is checked again.
attest_ttl = "1h"
# Most peers' handshakes kept. Failed ones expire within a minute and are evicted first past
# the cap, trusted ones never (beyond it handshakes run uncached): keep it above host.max_conns.
max_attestations = 8192

[worker]
# Requests run at once.
max_active = 16
# Price multiplier in per mille: 1000 = list price.
price_coefficient = 1000
# An OpenAI-compatible server (vLLM, sglang, llama.cpp's llama-server, Ollama), with a
# [[worker.models]] entry below for each model it serves, e.g.
#   backend_url = "http://127.0.0.1:8000/v1"
# or "embedded": the built-in pure-Go engine, which serves the model built into the binary
# when no model is named (so this file works as written).
backend_url = "{{backend}}"
backend_api_key = ""
# With backend_url = "embedded", the built-in engine serves a llama2.c-format checkpoint; the
# model's id must pin the first 16 hex digits of the file's SHA-256. It refuses a prompt that
# cannot fit the model's context before tokenizing it (the built-in model: 128 tokens, at most
# 1,270 bytes) and a body over 6 x those bytes + 64 KiB.
# model_file = "model.bin"
# tokenizer_file = "tokenizer.bin"

# One [[worker.models]] per model served. id pins the model as name@revision:hash;
# backend_name is the name the backend knows it by (default: the name part of id).
# [[worker.models]]
# id = "qwen3-8b@main:0123abcd"
# backend_name = "Qwen/Qwen3-8B"
# prices = { prompt = 1, cached = 0, completion = 4, reasoning = 4 }

[limits]
# Largest request body accepted, bytes.
max_body_bytes = 4194304
# Largest max_tokens accepted.
max_tokens = 32768
# Time a request gets when the caller sets none.
request_timeout = "10m"
# A streamed answer's first chunk must come from a worker within this, or the proxy tries the
# next worker (a client gives its proxy max_attempts times as long).
first_token_timeout = "30s"
# The longest a worker or proxy may send nothing, before the first token or after it: a
# working one sends a heartbeat after a third of it. A stopped or hung one fails the request
# over (nothing sent yet) or ends it with an error.
stall_timeout = "15s"
# A non-streamed answer (its first chunk is all of it) must come from a worker within this, or
# the proxy tries the next worker. Stream answers that take longer.
whole_answer_timeout = "5m"

[host]
# Connection manager water marks: above conns_high, unprotected connections are trimmed to
# conns_low. Proxies and workers a node depends on are never trimmed.
conns_low = 600
conns_high = 1000
# Resource manager caps for the whole node; refusals are logged.
max_conns = 4096
max_streams = 65536

[gossip]
# Most workers a proxy routes to, or a client lists; adverts of more are ignored (and logged).
max_workers = 4096
# Workers not yet known are taken in from capacity adverts at most this fast: admit_rate a
# second, admit_burst at once (a proxy dials and attests each). Adverts of unknown workers
# beyond that are ignored and not forwarded, so a flood of made-up identities stops here.
# Known workers always pass, and a worker that connects to a proxy needs no share of this.
admit_rate = 16
admit_burst = 64

[audit]
# A proxy that holds the model its workers serve sends them canaries, rate of its traffic
# (0.02: one per 50 answers), sealed, paid and sized like its clients' requests, and checks
# each answer against its own run of the model: "embedded" for the built-in model, or the URL
# of an OpenAI-compatible server running the same model deterministically, with
# reference_models = ["ID=NAME"]. A mismatch bans the worker and its machine, and writes a
# signed evidence record to dir (default <data_dir>/evidence) that anyone holding the model
# re-checks with 'cocoon-node verify-evidence FILE'. No reference: no audits. Canaries carry a
# decoding seed and temperature 0, which clients' requests need not: a worker that answered
# only those honestly could pass; threshold < 1 accepts near matches (external GPU servers).
off = false
rate = 0.02
threshold = 1.0
reference = ""
reference_models = []
dir = ""

[reputation]
# A proxy scores each worker from what it saw: answers served and paid raise the score (up to
# a cap), failures by kind lower it for longer, and a canary answered otherwise than the
# pinned model does bans the worker, and its machine, for 30 days. Below min_trust a worker
# gets no requests; above, busier ones weigh by it. off = true routes as if all were equal.
off = false
min_trust = 0.1
# At most this many worker identities per physical machine (the platform ID in its TDX quote,
# or the simulated TEE's marked one); a machine whose worker was banned admits none.
per_platform = 8
# A new worker is on probation until it served this many paid answers here: meanwhile it
# takes one request at a time while established workers can take the rest.
probation_answers = 20
# Peer IDs the operator vouches for (score 1) or refuses (score 0), whatever the evidence.
pin = []
ban = []
`

func renderDefaultConfig(role string) string {
	backend := "http://127.0.0.1:8000/v1"
	if role == "worker" {
		backend = "embedded" // a worker's config works as written: it serves the built-in model
	}
	return strings.NewReplacer("{{role}}", role, "{{backend}}", backend).Replace(defaultConfig)
}

// initConfig writes the commented default config.
func (m *Main) initConfig(args []string) error {
	fset := m.flagSet("init")
	out := fset.String("out", "cocoon.toml", "file to write")
	role := fset.String("role", "client", "client, proxy or worker")
	force := fset.Bool("force", false, "overwrite an existing file")
	if err := fset.Parse(args); err != nil {
		return err
	}
	switch *role {
	case "client", "proxy", "worker":
	default:
		return usageError(fmt.Sprintf("--role %q: want client, proxy or worker", *role))
	}
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if *force {
		flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	f, err := os.OpenFile(*out, flags, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s exists; pass --force to overwrite it", *out)
	}
	if err != nil {
		return err
	}
	if _, err := f.WriteString(renderDefaultConfig(*role)); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	fmt.Fprintf(m.Stdout, "wrote %s (role %s); start the node with: cocoon-node run --config %s\n", *out, *role, *out)
	return nil
}
