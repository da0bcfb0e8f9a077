# Two commands: `make weekly` (the report) and `make test` (the suite). Both set up .venv/ first.
# Set-up is idempotent: it reinstalls only when pyproject.toml or constraints.txt changed.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.setup-stamp
KERNEL := $(VENV)/share/jupyter/kernels/crm/kernel.json
UV_VERSION := 0.13.9

.PHONY: setup weekly test lab demo-data lint constraints clean-venv
.DEFAULT_GOAL := weekly

setup: $(STAMP) $(KERNEL)

$(PY):
	$(PYTHON) -m venv $(VENV)

# uv resolves and installs in seconds; pip would also work (slower, ~50 s)
$(STAMP): pyproject.toml constraints.txt | $(PY)
	$(PY) -m pip --version >/dev/null 2>&1 || $(PY) -m ensurepip --upgrade >/dev/null
	$(PY) -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(VENV)/bin/uv pip install --quiet --python $(PY) -c constraints.txt -e '.[dev]'
	touch $(STAMP)

$(KERNEL): $(STAMP)
	$(PY) -m ipykernel install --sys-prefix --name crm --display-name "Python (crm)" >/dev/null
	touch $(KERNEL)

# demo data only when data/raw/ holds no source files (a real center drops its own files there)
demo-data: setup
	@if [ -z "$$(find data/raw -type f ! -name README.md -print -quit 2>/dev/null)" ]; then \
		echo "data/raw/ is empty: generating the demo data"; $(VENV)/bin/crm demo-data; \
	fi

weekly: demo-data
	$(VENV)/bin/crm weekly $(ARGS)

test: setup
	$(VENV)/bin/ruff check --quiet .
	$(VENV)/bin/pytest $(ARGS) || [ $$? -eq 5 ]  # 5 = nothing collected, not a failure

lab: setup
	$(VENV)/bin/jupyter lab --notebook-dir=. --MappingKernelManager.default_kernel_name=crm

lint: setup
	$(VENV)/bin/ruff check .

# re-resolve after editing pyproject.toml dependencies: `make constraints` then commit constraints.txt
constraints: | $(PY)
	$(PY) -m pip --version >/dev/null 2>&1 || $(PY) -m ensurepip --upgrade >/dev/null
	$(PY) -m pip install --quiet uv==$(UV_VERSION)
	$(VENV)/bin/uv pip install --quiet --python $(PY) -e '.[dev]'
	$(VENV)/bin/uv pip freeze --python $(PY) | grep -v -e '^-e' -e '^crmlib' -e '^uv==' > constraints.txt

clean-venv:
	rm -rf $(VENV)
