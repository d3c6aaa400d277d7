# lagtrace: the two commands in the README are `make demo` and `make test`.
# Lab targets act on replica 1 unless REPLICA=2; LAB=docker uses docker-compose.yml.
SHELL := /bin/bash
LAB_SH := scripts/lab.sh
CARGO ?= cargo
LAG ?= 300
RATE ?= 200
SECONDS ?= 30
ROWS ?= 1
APPLY_MS ?= 0
THREADS ?= 4
BENCH_SECONDS ?= 30
LOAD ?=
REPLICAS ?= 100
RSS_SECONDS ?= 150
PROBES ?=
INTERVAL ?= 10ms
COUNTS ?= 2 10 100 1000
INTERVALS ?= 10ms 100ms

.PHONY: demo test bench bench-live bench-pt bench-rss up down status start-lag stop-lag slave-lag replica-lag stuff stall resume io-stop io-start block \
        break repair load oltp build release ci-deps fuzz soak failover split chain failback golden golden-expect matrix bench-tls bench-scale

## demo: start the lab, record 40 s under load with a 10 s stall, analyze, plot demo/*.svg
demo: release up
	scripts/demo.sh

## test: the whole suite against the lab (installs what is missing, starts the lab)
test:
	scripts/test.sh

## golden: record the incidents tests/golden.rs replays (on the lab) and what the offline commands give for them
golden: release up
	scripts/golden.sh record

## golden-expect: rewrite testdata/golden/*/expected from the committed stores (output changed on purpose)
golden-expect: release
	scripts/golden.sh expect

## matrix: every fault at every phase through the recorder core, judged against the truth (no server, seconds); rewrites docs/matrix.md
matrix:
	LAGTRACE_MATRIX=$(CURDIR)/docs/matrix.md cargo test --lib recorder::matrix -- --nocapture

build:
	$(CARGO) build

release:
	$(CARGO) build --release

up:
	$(LAB_SH) up
down:
	$(LAB_SH) down
status:
	$(LAB_SH) status
start-lag:
	LAG=$(LAG) $(LAB_SH) start-lag
stop-lag:
	$(LAB_SH) stop-lag
slave-lag replica-lag:
	$(LAB_SH) slave-lag
stuff:
	$(LAB_SH) stuff
stall:
	$(LAB_SH) stall
resume:
	$(LAB_SH) resume
io-stop:
	$(LAB_SH) io-stop
io-start:
	$(LAB_SH) io-start
block:
	LOAD_SECONDS=$(SECONDS) $(LAB_SH) block
break:
	$(LAB_SH) break
repair:
	$(LAB_SH) repair
load:
	RATE=$(RATE) ROWS=$(ROWS) APPLY_MS=$(APPLY_MS) LOAD_SECONDS=$(SECONDS) $(LAB_SH) load
oltp:
	RATE=$(RATE) THREADS=$(THREADS) LOAD_SECONDS=$(SECONDS) $(LAB_SH) oltp

## bench: store codec/append/scan figures, analyze/plot on a synthetic day, then the recorder's CPU and memory on the lab, and its live checks under load
bench:
	$(CARGO) bench --bench store
	$(CARGO) bench --bench analysis
	scripts/bench-record.sh
	scripts/bench-live.sh

## bench-pt: lagtrace and pt-heartbeat side by side on the lab (CPU and statements per lag value, reads per beat); LOAD=200 runs make load under both
bench-pt:
	BENCH_SECONDS=$(BENCH_SECONDS) LOAD=$(LOAD) PROBES="$(PROBES)" scripts/bench-vs-pt.sh

## bench-rss: the recorder's peak RSS with REPLICAS=100 replicas (the lab's two through HAProxy) for RSS_SECONDS=150, per probe mode; OUTAGE_AT=40 [OUTAGE_S=40] cuts every replica off for a while
bench-rss:
	REPLICAS=$(REPLICAS) BENCH_SECONDS=$(RSS_SECONDS) PROBES="$(PROBES)" OUTAGE_AT=$(OUTAGE_AT) OUTAGE_S=$(OUTAGE_S) INTERVAL=$(INTERVAL) scripts/bench-rss.sh

## bench-scale: CPU per lag value, share of a core, RSS and rounds at COUNTS="2 10 100 1000" replicas and INTERVALS="10ms 100ms", BENCH_SECONDS=30 each, both probes
bench-scale:
	COUNTS="$(COUNTS)" INTERVALS="$(INTERVALS)" BENCH_SECONDS=$(BENCH_SECONDS) PROBES="$(PROBES)" scripts/bench-scale.sh

## bench-tls: what TLS costs the recorder: tls = "disabled" and "verify_identity" side by side, per probe (CPU per lag value, peak RSS)
bench-tls:
	BENCH_SECONDS=$(BENCH_SECONDS) PROBES="$(PROBES)" scripts/bench-tls.sh

## bench-live: /check at 1000 requests/s (wrk): latency and recorder CPU; stall -> 503 detection latency
bench-live:
	scripts/bench-live.sh

## failover: replica2 becomes the primary, replica1 and the old primary replicate from it; failback undoes it
failover:
	$(LAB_SH) failover
## split: replica2 takes writes too (in GTID domain 3), nobody re-pointed (two writable servers); failback undoes it
split:
	$(LAB_SH) split
## chain: replica1 replicates from replica2 (which replicates from the primary); failback undoes it
chain:
	$(LAB_SH) chain
failback:
	$(LAB_SH) failback

## soak [HOURS=1]: record at 10 ms under a steady load for HOURS; RSS, store growth, drops per minute
soak:
	HOURS=$(or $(HOURS),1) scripts/soak.sh

## fuzz [SECONDS=60]: each cargo-fuzz target for SECONDS (nightly; installs cargo-fuzz)
fuzz:
	scripts/fuzz.sh $(or $(SECONDS),60)
