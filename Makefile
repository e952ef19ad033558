# The two commands a fresh machine needs: `make demo` and `make test`.
# Both bootstrap .venv from the pinned requirements-dev.txt.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: venv test demo sim bench report lint clean

venv: $(STAMP)

$(STAMP): requirements-dev.txt pyproject.toml tools/mkstubs.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements-dev.txt
	$(BIN)/pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	$(BIN)/python tools/mkstubs.py $(VENV)/mpstubs
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/pytest

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
