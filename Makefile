# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
# torch is installed first so that pip keeps that build (TORCH=torch for the registry's newest, e.g. CUDA).
PYTHON ?= python3
TORCH ?= torch==2.13.0
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.astrogen-installed

.PHONY: demo test test-fast bench lint docs clean report-check

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

demo: $(STAMP)
	$(BIN)/astrogen demo --out astrogen-demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/pytest

test-fast: $(STAMP)
	$(BIN)/pytest -m "not slow" -q

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py $(BENCH_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports

docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

clean:
	rm -rf astrogen-demo site .pytest_cache .ruff_cache

# A browser's view of the report: simulates two tiny sets in a temporary folder, evaluates them, and saves
# headless Chromium's screenshot of report.html (Debian's `chromium`); not part of `make test`.
CHROMIUM ?= chromium
REPORT_CHECK_PNG ?= /tmp/astrogen-report-check.png
REPORT_CHECK_SIZE ?= 1400,2400

report-check: $(STAMP)
	@set -e; dir=$$(mktemp -d); \
	$(BIN)/astrogen simulate blobs --n 40 --seed 0 --out $$dir/real.h5 --set size=32; \
	$(BIN)/astrogen simulate blobs --n 40 --seed 1 --out $$dir/generated.h5 --set size=32 --set n_blobs=10; \
	$(BIN)/astrogen evaluate $$dir/real.h5 $$dir/generated.h5 --out $$dir/eval > $$dir/evaluate.log; \
	rm -f $(REPORT_CHECK_PNG); \
	timeout 300 $(CHROMIUM) --headless --no-sandbox --disable-gpu --hide-scrollbars --user-data-dir=$$dir/chromium \
		--window-size=$(REPORT_CHECK_SIZE) --screenshot=$(abspath $(REPORT_CHECK_PNG)) \
		file://$$dir/eval/report.html 2> $$dir/chromium.log; \
	$(BIN)/python -c "import struct, sys; d = open(sys.argv[1], 'rb').read(24); \
		assert d[:8] == b'\x89PNG\r\n\x1a\n', 'not a PNG'; print('screenshot %d x %d:' % struct.unpack('>II', d[16:24]), \
		sys.argv[1])" $(REPORT_CHECK_PNG); \
	echo "report: $$dir/eval/report.html"
