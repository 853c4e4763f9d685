# jpki-face: the two commands a newcomer needs are `make run` and `make test`.
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: run test models pcsc build check lint fmt bench e2e clean-data fuzz-smoke

## Start the service on the embedded SQLite store at http://127.0.0.1:8080 with a demo tenant.
run: models pcsc
	$(CARGO) build --bin jpki-face
	scripts/dev-run.sh

## What CI runs: database and tools up, models fetched, format, lints, every test on both backends.
test: models pcsc
	scripts/ensure-postgres.sh
	scripts/ensure-tools.sh
	scripts/ensure-browser.sh
	scripts/ensure-jpki-cli.sh >/dev/null
	scripts/drop-test-databases.sh
	$(CARGO) fmt --all --check
	$(CARGO) clippy --all-targets -- -D warnings
	$(CARGO) test --all-targets
	@if [ -x tests/e2e.sh ]; then tests/e2e.sh; fi

## Fetch the ONNX models and the ONNX Runtime library (pinned by SHA-256, cached in ~/.cache/jpki-face).
models:
	@if [ -x scripts/fetch-models.sh ]; then scripts/fetch-models.sh; fi

## The PC/SC stack: the default features' reader links libpcsclite; the reader tests run pcscd + vpcd.
pcsc:
	scripts/ensure-pcsc.sh

build: pcsc
	$(CARGO) build --all-targets

fmt:
	$(CARGO) fmt --all

lint: pcsc
	$(CARGO) clippy --all-targets -- -D warnings

## Criterion benchmarks (numbers go to docs/performance.md; they assert nothing).
bench: models pcsc
	$(CARGO) bench

clean-data:
	rm -rf data

## Every cargo-fuzz target for a short while (FUZZ_SECONDS, default 20) on the stable toolchain; not part
## of `make test`. Corpora stay outside the tree (FUZZ_CORPUS, default target/fuzz-corpus). See docs/fuzzing.md.
FUZZ_SECONDS ?= 20
FUZZ_CORPUS ?= $(CURDIR)/target/fuzz-corpus
fuzz-smoke:
	@command -v cargo-fuzz >/dev/null || { echo "cargo install cargo-fuzz --locked"; exit 1; }
	cd fuzz && RUSTC_BOOTSTRAP=1 $(CARGO) fuzz build
	cd fuzz && for t in $$(RUSTC_BOOTSTRAP=1 $(CARGO) fuzz list); do \
	  mkdir -p "$(FUZZ_CORPUS)/$$t"; \
	  echo "fuzz-smoke: $$t"; \
	  RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run $$t "$(FUZZ_CORPUS)/$$t" -- -max_total_time=$(FUZZ_SECONDS) \
	    -rss_limit_mb=2048 -print_final_stats=1 > "$(FUZZ_CORPUS)/$$t.log" 2>&1 \
	    || { tail -40 "$(FUZZ_CORPUS)/$$t.log"; exit 1; }; \
	  grep -E "stat::number_of_executed_units|stat::new_units_added" "$(FUZZ_CORPUS)/$$t.log"; \
	done
