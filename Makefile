# The two commands a fresh machine needs: `make demo` and `make test`.
# Both bootstrap .venv from the pinned requirements-dev.txt.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: venv test test-loaded demo sim bench report lint clean

venv: $(STAMP)

$(STAMP): requirements-dev.txt pyproject.toml tools/mkstubs.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements-dev.txt
	$(BIN)/pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	$(BIN)/python tools/mkstubs.py $(VENV)/mpstubs
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/pytest

# The tests that drive the virtual pen in real time, with every core kept busy: their verdicts
# wait on the pen (its state, its own clock), so they come out the same, only later.
test-loaded: $(STAMP)
	$(BIN)/python tools/loaded.py -- $(BIN)/pytest -q -p no:cacheprovider \
	  tests/test_device_scenarios.py tests/test_treat_vpen.py tests/test_log_report.py \
	  tests/test_cli_e2e.py

demo: $(STAMP)
	$(BIN)/python -m pen.demo

sim: $(STAMP)
	$(BIN)/pen sim

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

# docs/faults.md (the fault matrix, from its tests) and docs/traceability.md; fails if either
# finds a problem (a fault without a row or a failing bound; a requirement without a test, a
# test naming an unknown ID, a verifying test that did not pass).
report: $(STAMP)
	$(BIN)/python tools/gen_faults.py; s=$$?; $(BIN)/python tools/traceability.py && exit $$s

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) build *.egg-info host_tools/*.egg-info
