# tsunagu — `make demo` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install postgres chromium test test-unit docs demo bench bench-quality bench-speed clean

install: $(STAMP)

$(STAMP): requirements.txt requirements-nodeps.txt requirements-docs.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	# clkhash pins cryptography<41; install it (and anonlink) without their
	# dependencies so the patched cryptography from requirements.txt is used.
	$(BIN)/python -m pip install --quiet --no-deps -r requirements-nodeps.txt
	$(BIN)/python -m pip install --quiet -r requirements-docs.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

# PostgreSQL server binaries for the test suite's throwaway cluster (tests/support/postgres.py).
postgres:
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { apt-get update && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql; }

# Debian's Chromium for the web UI's end-to-end tests (tests/integration/*/web drive it through Playwright),
# and a Japanese font so the screenshots they keep show the pages as staff see them.
chromium:
	{ test -x /usr/bin/chromium && test -d /usr/share/fonts/opentype/ipafont-gothic; } || { apt-get update && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium fonts-ipafont-gothic; }

# The documentation site, offline, strict: a warning (broken link, bad docstring) fails the build.
docs: install
	$(BIN)/mkdocs build --strict --quiet

test: install postgres chromium docs
	$(BIN)/python -m pytest -q

# In-process tests only (tests/unit) and the source-tree checks: no server, database, browser or process started.
test-unit: install
	$(BIN)/python -m pytest -q tests/unit tests/structure

demo: install
	$(BIN)/python -m demo

bench-quality: install
	$(BIN)/tsunagu bench quality --out bench-out

bench-speed: install
	$(BIN)/tsunagu bench speed

bench: bench-quality bench-speed

clean:
	rm -rf $(VENV) .demo bench-out .pytest_cache .site
