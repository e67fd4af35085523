PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv demo test bench dashboard clean fixtures

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: venv
	$(BIN)/spsti-monitor --db sqlite:///demo.db demo

test: venv
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

bench: venv
	command -v hyperfine >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq hyperfine >/dev/null)
	$(BIN)/python -m fixtures.harness.bench --large $(if $(SPSTI_MONITOR_TEST_PG_URL),--pg $(SPSTI_MONITOR_TEST_PG_URL),)
	$(BIN)/python -m pytest -q -s -p no:cacheprovider tests/test_dashboard_browser.py -k ten_thousand

fixtures: venv
	$(BIN)/python -m fixtures.generate

clean:
	rm -rf $(VENV) demo.db *.egg-info .pytest_cache
