# jpki-face: the two commands a newcomer needs are `make run` and `make test`.
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: run test models build check lint fmt bench e2e clean-data

## Start the service on the embedded SQLite store at http://127.0.0.1:8080 with a demo tenant.
run: models
	$(CARGO) build --bin jpki-face
	scripts/dev-run.sh

## What CI runs: database and tools up, models fetched, format, lints, every test on both backends.
test: models
	scripts/ensure-postgres.sh
	scripts/ensure-tools.sh
	scripts/drop-test-databases.sh
	$(CARGO) fmt --all --check
	$(CARGO) clippy --all-targets -- -D warnings
	$(CARGO) test --all-targets
	@if [ -x tests/e2e.sh ]; then tests/e2e.sh; fi

## Fetch the ONNX models and the ONNX Runtime library (pinned by SHA-256, cached in ~/.cache/jpki-face).
models:
	@if [ -x scripts/fetch-models.sh ]; then scripts/fetch-models.sh; fi

build:
	$(CARGO) build --all-targets

fmt:
	$(CARGO) fmt --all

lint:
	$(CARGO) clippy --all-targets -- -D warnings

## Criterion benchmarks (numbers go to docs/performance.md; they assert nothing).
bench: models
	$(CARGO) bench

clean-data:
	rm -rf data
