# paycore: the two commands a new user needs are `make run` and `make test`.
CARGO ?= cargo
DATA_DIR ?= ./data
LISTEN ?= 127.0.0.1:50051
# The hosted pages (the sandbox's 3-D Secure challenge) for `make run`.
PAGES_LISTEN ?= 127.0.0.1:50080
# Benchmarks run this long per scenario (seconds).
BENCH_SECONDS ?= 10
# Events in the generated log the history benchmark replays.
HISTORY_EVENTS ?= 10000000
# Extra arguments of `kv-compare compare` (e.g. --count 1000000 --rounds 3).
KV_ARGS ?=
# PostgreSQL for the shared-store benchmarks and tests.
PG_URL ?= postgres://postgres@127.0.0.1:5432/test
# Fuzzing: seconds per target, targets (all by default; `paycore-fuzz list`).
FUZZ_SECONDS ?= 600
FUZZ_TARGETS ?= grpc_request log_frame log_index_snapshot log_open model_row aggregate_snapshot page_token event_payload

# The end-to-end tests of several servers on PostgreSQL, run again by
# `make test` with every server answering from the read-model tables
# (`--queries-from-tables`, inherited as PAYCORE_QUERIES_FROM_TABLES).
PG_TESTS_ON_TABLES = test(=two_servers_on_one_database_keep_the_books_exact) \
	| test(=losing_the_database_mid_traffic_fails_cleanly_and_recovers) \
	| test(=batches_from_two_servers_on_postgresql_keep_the_books_exact) \
	| test(=on_postgresql_another_server_takes_over_when_the_expiring_one_dies) \
	| test(=the_tables_follow_the_log_and_another_server_writes_them_when_the_writer_is_killed)

.PHONY: run test bench bench-kv lint fmt check-tools clean fuzz fuzz-stable

## run: start the gRPC server on the embedded store in $(DATA_DIR), with the
## hosted pages on $(PAGES_LISTEN)
run:
	$(CARGO) run --release -p paycore-cli -- serve --data-dir $(DATA_DIR) --listen $(LISTEN) --pages-listen $(PAGES_LISTEN)

## test: the whole test suite (unit, property, conformance, end-to-end),
## then the end-to-end suite again with the engine's state cache at 4 KiB
## (a few states: evicted on nearly every command, and no answer may
## change). Left out of that run: the stalled-subscriber memory test, whose
## 3,000 project updates of 24 KiB each would make every request fold up to
## 1,000 of them (the project no longer fits) for minutes, testing nothing
## about the cache. Then the tests of several servers on PostgreSQL again,
## answering queries from the read-model tables (PG_TESTS_ON_TABLES).
test: check-tools
	$(CARGO) build --workspace --bins
	$(CARGO) nextest run --workspace --no-fail-fast
	PAYCORE_STATE_CACHE_BYTES=4096 $(CARGO) nextest run -p paycore-e2e --no-fail-fast \
		-E 'not test(=a_stalled_subscriber_does_not_grow_the_servers_memory)'
	PAYCORE_QUERIES_FROM_TABLES=true $(CARGO) nextest run -p paycore-e2e --no-fail-fast -E '$(PG_TESTS_ON_TABLES)'
	$(CARGO) test --workspace --doc

## bench: store append rate and gRPC transfer throughput/latency (release),
## batched transfers (CreateTransfers at 1, 100, 1,000, 8,190 per call) and
## two-phase operations,
## on the embedded log and on PostgreSQL ($(PG_URL), a fresh schema per run,
## queries from each server's own models, then from the read-model tables);
## then audit replay, projection rebuild and server start over a generated
## log of $(HISTORY_EVENTS) events (kept in target/bench-data/history); and
## open banking imports of the sandbox user_good (5 accounts, 5 years)
bench:
	$(CARGO) build --release -p paycore-cli -p paycore-bench
	./target/release/paycore-bench history --events $(HISTORY_EVENTS) --server-bin ./target/release/paycore
	./target/release/paycore-bench store --pg-url $(PG_URL)
	./target/release/paycore-bench grpc --seconds $(BENCH_SECONDS) --server-bin ./target/release/paycore
	./target/release/paycore-bench batches --seconds $(BENCH_SECONDS) --server-bin ./target/release/paycore
	./target/release/paycore-bench import --server-bin ./target/release/paycore
	for tables in false true; do \
	echo "PostgreSQL, queries from the read-model tables: $$tables"; \
	schema=bench_grpc_$$$$; key=$$(mktemp); head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > $$key; \
	./target/release/paycore db migrate --store $(PG_URL) --pg-schema $$schema && \
	PAYCORE_STORE=$(PG_URL) PAYCORE_PG_SCHEMA=$$schema PAYCORE_VAULT_KEY_FILE=$$key PAYCORE_QUERIES_FROM_TABLES=$$tables \
		./target/release/paycore-bench grpc --clients 64 --seconds $(BENCH_SECONDS) --server-bin ./target/release/paycore; \
	status=$$?; rm -f $$key; psql $(PG_URL) -q -c "DROP SCHEMA IF EXISTS $$schema CASCADE" >/dev/null 2>&1; \
	[ $$status = 0 ] || exit $$status; \
	done

## bench-kv: redb vs fjall vs LMDB (heed) for the read models: 5M transactions
## in batches, point reads, newest-first pages, size, RSS, reopen; each store
## in its own process, two rounds alternating, medians (bench/kv-compare,
## outside the workspace; temporary databases in bench/kv-compare/target/data)
bench-kv:
	cd bench/kv-compare && $(CARGO) build --release --locked
	./bench/kv-compare/target/release/kv-compare compare $(KV_ARGS)

## fuzz: coverage-guided fuzzing (cargo-fuzz, libFuzzer, stable toolchain)
## of every decoder, $(FUZZ_SECONDS) s per target in $(FUZZ_TARGETS); the
## corpus grows in fuzz/corpus/<target>, crashes land in fuzz/artifacts/
fuzz:
	@$(CARGO) fuzz --version >/dev/null 2>&1 || $(CARGO) install --locked cargo-fuzz
	$(CARGO) run --release -p paycore-fuzz -- seeds fuzz/seeds
	cd fuzz && $(CARGO) fuzz build -O -a --sanitizer none
	cd fuzz && for target in $(FUZZ_TARGETS); do \
		mkdir -p corpus/$$target && \
		$(CARGO) fuzz run -O -a --sanitizer none $$target corpus/$$target seeds/$$target -- \
			-max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=4096 -timeout=30 -print_final_stats=1 || exit 1; \
	done

## fuzz-stable: the same targets with paycore-fuzz's seeded mutator (no
## coverage feedback, no cargo-fuzz needed), $(FUZZ_SECONDS) s per target
fuzz-stable:
	$(CARGO) run --release -p paycore-fuzz -- run --seconds $(FUZZ_SECONDS) $(FUZZ_TARGETS)

## lint: formatting and clippy, warnings are errors
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## fmt: format the code
fmt:
	$(CARGO) fmt --all

# cargo-nextest runs the suite in parallel processes; install it if missing.
check-tools:
	@$(CARGO) nextest --version >/dev/null 2>&1 || $(CARGO) install --locked cargo-nextest
	@# The hosted pages' browser test drives Debian's chromium through chromedriver.
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
		echo "installing chromium and chromium-driver for the browser tests"; \
		sudo=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$sudo apt-get install -y -q chromium chromium-driver >/dev/null \
		|| { $$sudo apt-get update -q >/dev/null && $$sudo apt-get install -y -q chromium chromium-driver >/dev/null; }; \
	fi

clean:
	$(CARGO) clean
