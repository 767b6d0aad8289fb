# Two commands on a fresh machine: `make demo` (install + pipeline end to end on the embedded demo)
# and `make test` (install + test suite). Python 3.11, no GPU, no internet beyond PyPI.
VENV ?= .venv
PYTHON ?= python3
CORES ?= 2
BIN := $(VENV)/bin

.PHONY: install demo demo-study test lint bench bench-scale bench-scale-stages clean-demo progress

install: $(VENV)/.installed

PLUGIN := plugins/snakemake-logger-plugin-latentopt

$(VENV)/.installed: requirements.txt $(PLUGIN)/pyproject.toml $(PLUGIN)/snakemake_logger_plugin_latentopt/__init__.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps ./$(PLUGIN)   # --logger latentopt: the live status page
	touch $@

demo: install
	PYTHONPATH=workflow_scripts $(BIN)/python -m latentopt.data.demo_data demo/data
	$(BIN)/snakemake --configfile demo/config.yaml --cores $(CORES) --logger latentopt

demo-study: install
	PYTHONPATH=workflow_scripts $(BIN)/python -m latentopt.data.demo_data demo/data
	$(BIN)/snakemake --configfile demo/study.yaml --cores $(CORES) --logger latentopt

test: install
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/pytest -q

lint: install
	$(BIN)/snakemake --lint --configfile demo/config.yaml
	$(BIN)/snakemake --lint --configfile demo/study.yaml
	$(BIN)/snakefmt --check Snakefile rules

bench: install
	$(BIN)/python bench/benchmark.py --quick

bench-scale: install
	$(BIN)/python bench/benchmark.py --scale

bench-scale-stages: install
	$(BIN)/python bench/benchmark.py --scale-stages

clean-demo:
	rm -rf results/demo results/demo_study demo/data

progress:
	PYTHONPATH=workflow_scripts $(BIN)/python -m latentopt.workflow.progress $(if $(CONFIG),--configfile $(CONFIG),--configfile demo/config.yaml) $(if $(WATCH),--watch $(WATCH))
