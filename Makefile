# ai_router — `make run` starts everything, `make test` checks everything. Needs Python >= 3.11.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python

.PHONY: run test lint format bench clean

# The venv is (re)built when a requirements file changes; stamps record what was installed.
$(VENV)/bin/python:
	@$(PYTHON) -c 'import sys; sys.exit("Python >= 3.11 is required, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.runtime: $(VENV)/bin/python requirements.txt
	$(PY) -m pip install --quiet -r requirements.txt
	@touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(PY) -m pip install --quiet -r requirements-dev.txt
	@touch $@

## run: web + worker + bot listener (+ embedded Redis when REDIS_URL is unset), Ctrl-C stops all
run: $(VENV)/.runtime
	$(PY) run.py

## lint: ruff (pycodestyle, pyflakes, pydocstyle/Google, bugbear, isort) and format check
lint: $(VENV)/.dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

## test: lint, then the whole suite (real Redis/worker/HTTP fakes; PostgreSQL too with TEST_DATABASE_URL)
# pytest's exit code 5 ("no tests collected") fails the run on purpose: a green run must test.
test: lint
	@$(PY) -m pytest $(PYTEST_ARGS); status=$$?; \
	if [ $$status -eq 5 ]; then echo "make test: pytest collected no tests" >&2; fi; \
	exit $$status

format: $(VENV)/.dev
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

## bench: load and latency benchmarks (not part of `make test`)
bench: $(VENV)/.dev
	$(PY) -m bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
