# The two commands of SPEC §2 (plus a benchmark).
.PHONY: run test bench

run:   ## bring the service up on 127.0.0.1:8000 (embedded default)
	bash scripts/run.sh

test:  ## the whole test suite, on SQLite and on PostgreSQL
	bash scripts/test.sh

bench: ## speed ratios, see bench/README
	bash scripts/bench.sh
