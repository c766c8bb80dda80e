# secure-fota developer commands. `make test` and `make demo` work from a fresh clone.
SHELL := /bin/bash
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: help install lint typecheck test test-python clean host-test fuzz-smoke fuzz bench

help:
	@echo "make test    - create .venv, install, lint, type-check and run every test"
	@echo "make demo    - create .venv, install, and run the end-to-end demo (fota demo)"
	@echo "make tour    - run the README's tour as written (tests/e2e/test_readme_tour.py)"
	@echo "make install - create .venv and install secure-fota with its test extras"
	@echo "make lint    - ruff"
	@echo "make clean   - remove build and test leftovers (keeps .venv)"
	@echo "make host-test - build the ESP32 C core on the host (cmake) and run its tests (ctest)"
	@echo "make fuzz    - fuzz the C core's manifest and image paths (FUZZ_SECONDS=300)"
	@echo "make bench   - the cheap benchmarks (author, server vs nginx, C core, fleet), ~2 minutes"
	@echo "make attacks - only the attack suite (tests/attacks, docs/SECURITY.md)"
	@echo "make soak    - the long soak: 2,000 simulated devices for 5 minutes"
	@echo "make esp32-qemu, esp32-idf-check, esp32-qemu-probe, esp32-qemu-e2e - ESP-IDF build and QEMU runs (esp32/README.md; need the snapshots)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	@echo "installing secure-fota and its test extras into $(VENV) (the first time takes a few minutes)"
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --progress-bar on -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

typecheck: $(STAMP)
	$(BIN)/mypy src

test-python: $(STAMP)
	$(BIN)/pytest $(PYTEST_ARGS)

test: lint typecheck host-test test-python fuzz-smoke

clean:
	rm -rf build dist .pytest_cache .mypy_cache .ruff_cache

.PHONY: attacks soak
attacks: $(STAMP)
	$(BIN)/pytest tests/attacks

soak: $(STAMP)
	$(BIN)/python -m tests.attacks.soak --long

.PHONY: demo tour
demo: $(STAMP)
	$(BIN)/fota demo

tour: $(STAMP)
	$(BIN)/pytest tests/e2e/test_readme_tour.py -v

# ---- ESP32 C core on the host (esp32/host): cmake + ctest, libFuzzer ----------------------
HOST_BUILD   := build/esp32-host
# clang (libFuzzer), else the newest versioned clang-NN on PATH (Debian/Ubuntu), else cc
HOST_CC      := $(firstword $(shell command -v clang 2>/dev/null) \
                  $(shell compgen -c clang- 2>/dev/null | grep -E '^clang-[0-9]+$$' | sort -t- -k2 -n | tail -1) \
                  $(shell command -v cc 2>/dev/null))
HOST_MISSING := $(strip $(if $(shell command -v cmake 2>/dev/null),,cmake) \
                  $(if $(HOST_CC),,a-C-compiler) \
                  $(if $(wildcard /usr/include/mbedtls/version.h),,libmbedtls-dev) \
                  $(if $(wildcard /usr/include/cjson/cJSON.h),,libcjson-dev))
FUZZ_SECONDS ?= 300
FUZZ_SMOKE_SECONDS ?= 25
FUZZ_CORPUS  := $(HOST_BUILD)/fuzz-corpus

host-test:
ifeq ($(HOST_MISSING),)
	cmake -S esp32/host -B $(HOST_BUILD) -DCMAKE_C_COMPILER=$(HOST_CC) >/dev/null
	cmake --build $(HOST_BUILD) -j2
	ctest --test-dir $(HOST_BUILD) --output-on-failure
else
	@echo "SKIPPED esp32 host tests: missing $(HOST_MISSING) (apt-get install cmake clang libmbedtls-dev libcjson-dev)"
endif

$(FUZZ_CORPUS): tests/vectors/cases.json
	rm -rf $@ && mkdir -p $@
	for f in tests/vectors/*.manifest; do (printf '\000'; cat "$$f") > "$@/0-$$(basename $$f)"; done
	for f in tests/vectors/*.freshness; do (printf '\003'; cat "$$f") > "$@/3-$$(basename $$f)"; done
	for f in tests/vectors/ok-v1.bin tests/vectors/img-*.bin; do (printf '\005'; cat "$$f") > "$@/5-$$(basename $$f)"; done
	(printf '\001'; cat tests/vectors/fuzz-seeds/1-jws.txt) > $@/1-jws
	(printf '\002'; cat tests/vectors/fuzz-seeds/2-claims.json) > $@/2-claims
	(printf '\004'; cat tests/vectors/fuzz-seeds/2-claims.json) > $@/4-json
	(printf '\006'; cat tests/vectors/fuzz-seeds/6-app.bin) > $@/6-app
	(printf '\001'; cat tests/vectors/fuzz-seeds/1-jws-rot.txt) > $@/1-jws-rot
	for f in tests/vectors/fuzz-seeds/7-*.der; do (printf '\007'; cat "$$f") > "$@/7-$$(basename $$f)"; done
	(printf '\010'; cat tests/vectors/fuzz-seeds/8-header-rot.json) > $@/8-header-rot
	for f in tests/vectors/fuzz-seeds/9-*.json; do (printf '\011'; cat "$$f") > "$@/9-$$(basename $$f)"; done
	(printf '\012'; cat tests/vectors/fuzz-seeds/10-head-404.txt) > $@/10-head-404

define run_fuzz
	@if [ -x $(HOST_BUILD)/fuzz_manifest ]; then \
	  $(MAKE) --no-print-directory $(FUZZ_CORPUS) && mkdir -p $(HOST_BUILD)/fuzz-found && \
	  $(HOST_BUILD)/fuzz_manifest -max_total_time=$(1) -max_len=20000 -timeout=10 -rss_limit_mb=2048 \
	    -print_final_stats=1 -artifact_prefix=$(HOST_BUILD)/fuzz-found/ $(HOST_BUILD)/fuzz-found $(FUZZ_CORPUS) 2>&1 | \
	    grep -E 'stat::number_of_executed_units|stat::peak_rss_mb|Done|ERROR|SUMMARY' ; \
	  exit $${PIPESTATUS[0]}; \
	else echo "SKIPPED fuzzing: no $(HOST_BUILD)/fuzz_manifest (needs clang with libFuzzer: libclang-rt-14-dev)"; fi
endef

fuzz-smoke: host-test
	$(call run_fuzz,$(FUZZ_SMOKE_SECONDS))

fuzz: host-test
	$(call run_fuzz,$(FUZZ_SECONDS))

# ---- benchmarks (docs/PERFORMANCE.md) -----------------------------------------------------------
# Short runs of the cheap benchmarks, loopback only; results in build/bench/results/*.json.
# The full runs recorded in docs/PERFORMANCE.md use the commands listed there.
BENCH_SECONDS ?= 3

bench: $(STAMP)
	@command -v wrk >/dev/null && command -v nginx >/dev/null || \
	  { echo "make bench needs wrk and nginx (apt-get install wrk nginx-light)"; exit 1; }
	$(BIN)/python bench/author.py --runs 5 --memory-sizes 1,8
	$(BIN)/python bench/server.py --workers 1 --duration $(BENCH_SECONDS) --repeats 1 \
	  --tests poll-200,poll-304,poll-nonce,newconn,resume,download,range,range16,newest-range16,latency
ifeq ($(HOST_MISSING),)
	$(BIN)/python bench/c_core.py --repeats 7
else
	@echo "SKIPPED C core benchmark: missing $(HOST_MISSING)"
endif
	$(BIN)/python bench/fleet.py --devices 1000 --duration 15

# ---- ESP-IDF build and Espressif QEMU (esp32/qemu, esp32/README.md "ESP-IDF and QEMU") --------
# Not part of `make test`/CI: they need git snapshots of ESP-IDF, newlib-esp32, Espressif's QEMU
# ... under ESP_MIRROR and build into ESP_LAB (outside the repository; cached, stamps per step).
ESP_MIRROR ?= /work/.mirror
ESP_LAB    ?= /work/esp32-lab
ESP_ENV    := ESP_MIRROR=$(ESP_MIRROR) ESP_LAB=$(ESP_LAB)
.PHONY: esp32-qemu esp32-idf-check esp32-qemu-probe esp32-qemu-e2e

esp32-qemu:
	$(ESP_ENV) esp32/qemu/build.sh

esp32-idf-check: esp32-qemu
	$(ESP_ENV) python3 esp32/qemu/idf_check.py

# proof logs committed under esp32/qemu/ come from these targets (see esp32/README.md)
esp32-qemu-probe: esp32-qemu
	$(ESP_ENV) python3 esp32/qemu/probe.py --log $(ESP_LAB)/probe/report.txt

esp32-qemu-e2e: esp32-qemu $(STAMP)
	$(ESP_ENV) $(BIN)/python esp32/qemu/e2e.py --log $(ESP_LAB)/e2e-report.txt
