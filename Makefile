# The two commands a fresh machine needs: `make demo` and `make test`.
# Both bootstrap .venv from the pinned requirements-dev.txt.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: venv test test-loaded test-chip demo sim bench bench-chip firmware report lint clean

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

# The chip tier alone: the pen's files on the RP2040 base image in the emulator (tests/chip;
# skipped, with the reason, where ../shared/rp2/ or $$PEN_RP2_IMAGE has no image).
test-chip: $(STAMP)
	$(BIN)/pytest -rs tests/chip

demo: $(STAMP)
	$(BIN)/python -m pen.demo

sim: $(STAMP)
	$(BIN)/pen sim

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

bench-chip: $(STAMP)
	$(BIN)/python bench/chip.py

# The pen's base image from MicroPython's sources (v1.28.0 with its submodules, an ARM GCC and
# cmake): MicroPython's RPI_PICO board folder plus hardware/board/mpconfigboard_pen.h (a 256 KiB
# ROMFS partition). Result: build/firmware/firmware.uf2 (flash it: README, "Flashing the pen").
MICROPY_DIR ?=
FW_BUILD := $(CURDIR)/build/firmware
firmware: $(STAMP)
	@test -n "$(MICROPY_DIR)" || { echo "usage: make firmware MICROPY_DIR=/path/to/micropython"; exit 2; }
	rm -rf $(FW_BUILD) && mkdir -p $(FW_BUILD)/board
	cp $(addprefix $(MICROPY_DIR)/ports/rp2/boards/RPI_PICO/,board.json mpconfigboard.cmake mpconfigboard.h pins.csv) $(FW_BUILD)/board/
	cat hardware/board/mpconfigboard_pen.h >> $(FW_BUILD)/board/mpconfigboard.h
	$(MAKE) -C $(MICROPY_DIR)/mpy-cross
	CMAKE_ARGS=-DPICO_NO_PICOTOOL=1 $(MAKE) -C $(MICROPY_DIR)/ports/rp2 BOARD_DIR=$(FW_BUILD)/board BUILD=$(FW_BUILD)/build -j2
	$(BIN)/python -m chip.uf2 $(FW_BUILD)/build/firmware.bin $(FW_BUILD)/firmware.uf2 --max-bytes 0x60000

# docs/faults.md (the fault matrix, from its tests) and docs/traceability.md; fails if either
# finds a problem (a fault without a row or a failing bound; a requirement without a test, a
# test naming an unknown ID, a verifying test that did not pass).
report: $(STAMP)
	$(BIN)/python tools/gen_faults.py; s=$$?; $(BIN)/python tools/traceability.py && exit $$s

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) build *.egg-info host_tools/*.egg-info
