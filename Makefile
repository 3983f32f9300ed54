# certsvc developer commands. `make demo` and `make test` work on a fresh Debian machine
# with Postgres and Redis running; everything else they need is installed here.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PYTEST_ARGS ?=

.PHONY: install pebble demo test protos clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

# Debian's pebble package provides pebble and pebble-challtestsrv.
pebble:
	@if ! command -v pebble >/dev/null || ! command -v pebble-challtestsrv >/dev/null; then \
		$(SUDO) apt-get update && $(SUDO) apt-get install -y pebble; \
	fi

demo: install pebble
	$(BIN)/python -m devtools.demo

test: install pebble
	$(BIN)/python -m pytest $(PYTEST_ARGS)

protos: install
	$(BIN)/python protos/generate.py

clean:
	rm -rf $(VENV) .pytest_cache
