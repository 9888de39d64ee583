# The two commands (run, test) plus the benchmark.
.PHONY: run test bench

run:   ## bring the service up on 127.0.0.1:8000 (embedded default)
	bash scripts/run.sh

test:  ## the whole test suite, on SQLite and on PostgreSQL
	bash scripts/test.sh

bench: ## speed ratios, see the README (Speed); `make bench BENCH_SHORT=1` checks it in minutes
	bash scripts/bench.sh
