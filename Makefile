# Two commands for a fresh machine with Python 3.11: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
LOCALE_DIR = bot/content/locale

.PHONY: demo test lint i18n bench clean

$(BIN)/tinbao: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

demo: $(BIN)/tinbao  ## the whole bot offline, seeded, in the browser as three phones (prints the URL)
	$(BIN)/tinbao demo $(DEMO_ARGS)

test: $(BIN)/tinbao  ## the whole test suite (SQLite; PostgreSQL too when TINBAO_TEST_POSTGRES_URL is set)
	$(BIN)/pytest -q

lint: $(BIN)/tinbao
	$(BIN)/ruff check .
	$(BIN)/mypy

i18n: $(BIN)/tinbao  ## extract messages and merge them into the vi/en catalogs
	$(BIN)/pybabel extract -F babel.cfg -k _ -k gettext -k ngettext:1,2 --no-location \
		--sort-output --project tinbao -o $(LOCALE_DIR)/tinbao.pot bot storage tinbao web
	$(BIN)/pybabel update -D tinbao -i $(LOCALE_DIR)/tinbao.pot -d $(LOCALE_DIR) \
		--no-fuzzy-matching --ignore-obsolete

bench: $(BIN)/tinbao
	$(BIN)/python bench/intake.py

clean:
	rm -rf $(VENV) tinbao-demo .pytest_cache .mypy_cache .ruff_cache
