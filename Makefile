# s4lite: two commands on a fresh machine (Python >= 3.10):
#   make book   create .venv if missing, install everything, build the site into _build/html
#   make test   same environment, build the site (cached) and run the whole test suite
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: book test env clean clean-cache

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $(STAMP)

env: $(STAMP)

book: $(STAMP)
	JAX_PLATFORMS=cpu OPENBLAS_NUM_THREADS=1 $(VENV)/bin/jupyter-book build . -W -n --keep-going
	@echo
	@echo "Chapter execution times (this build or the cached one it reused):"
	@$(PY) tools/chapter_times.py _build/.jupyter_cache
	@echo
	@echo "The book is built. Open: file://$(CURDIR)/_build/html/index.html"
	@echo "(or serve it: $(PY) -m http.server -d _build/html 8000, then http://localhost:8000)"

test: book
	JAX_PLATFORMS=cpu $(PY) -m pytest -q -n auto --maxprocesses 8 --dist loadfile

clean:
	rm -rf _build

clean-cache:
	rm -rf _build/.jupyter_cache
