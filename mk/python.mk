# The Python package (python/, import name `ferry`) and the Go-library-for-Python example
# (examples/python-go/).
#
# make python-venv       build/venv with what the Python side needs from PyPI (cffi, pytest,
#                        numpy, setuptools, wheel); remade when python/pyproject.toml changes.
# make python-install    pip install ./python into the venv (setuptools runs cargo and bundles
#                        libferry.so into the wheel).
# make test-python       (in `make test`) the bindings check, the pytest suites against the
#                        installed wheel (with a 1M-cycle RSS soak), the valgrind run of
#                        python/tests/valgrind_check.py under PYTHONMALLOC=malloc, and
#                        test-python-go. About 1-2 minutes on 2 cores after the venv exists.
# make test-python-go    builds examples/python-go as a c-shared Go library linked to libferry.so
#                        and runs the Python program that views its buffers through one table.
# make bench-python      python/bench/bench.py: binding choice, view vs copy at 64 B..64 MiB,
#                        1M async completions batched vs one per crossing.
# make demo-python       the Python demo: a table, and a section appended to $(DEMO_OUT)/report.md.
# make python-bindings   regenerates python/src/ferry/_bindings.py from ffi/ferry.h.
# make test-python-versions  the pytest suites on every other CPython that pyenv has (not in
#                        `make test`).

PYTHON3       ?= python3
PY_VENV       := build/venv
PY            := $(PY_VENV)/bin/python
PY_REQS       := "setuptools>=70.1" wheel "cffi>=1.15" "pytest>=7" numpy
PY_SOAK       ?= 1000000
PY_GO_OUT     := build/python-go
PY_VALGRIND   := PYTHONMALLOC=malloc valgrind -q --error-exitcode=99 --leak-check=full \
	--errors-for-leak-kinds=definite --show-leak-kinds=definite \
	--suppressions=$(CURDIR)/python/tests/valgrind.supp
PY_DEMO_FLAGS ?=

.PHONY: python-venv python-install test-python test-python-go bench-python demo-python \
	python-bindings test-python-versions

$(PY_VENV)/.ready: python/pyproject.toml
	rm -rf $(PY_VENV)
	$(PYTHON3) -m venv $(PY_VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(PY_REQS)
	@touch $@

python-venv: $(PY_VENV)/.ready

# --no-build-isolation: the venv already has setuptools and wheel, so nothing else is fetched.
python-install: lib python-venv
	$(PY) -m pip install -q --no-build-isolation --no-deps --force-reinstall ./python

test-python: python-install
	$(PY) python/tools/gen_bindings.py --check
	cd python && FERRY_PY_SOAK=$(PY_SOAK) ../$(PY) -m pytest -q -p no:cacheprovider tests
	cd python/tests && $(PY_VALGRIND) ../../$(PY) valgrind_check.py
	@$(MAKE) --no-print-directory test-python-go

# -tags ferry_external links no copy of ferry into the Go library; CGO_LDFLAGS links it to
# libferry.so, whose SONAME (libferry.so.N, N the ABI version) the dynamic linker matches with the one the Python
# package already loaded.
test-python-go: python-install
	@mkdir -p $(PY_GO_OUT)
	cd examples/python-go && $(GO) vet -tags ferry_external . && \
		CGO_LDFLAGS="-L$(CURDIR)/$(LIB_DIR) -lferry" $(GO) build -tags ferry_external \
		-buildmode=c-shared -o $(CURDIR)/$(PY_GO_OUT)/libpygo.so .
	cd examples/python-go && ../../$(PY) -m pytest -q -p no:cacheprovider test_python_go.py

bench-python: python-install
	$(PY) python/bench/bench.py

demo-python: python-install
	$(PY) python/demo/demo.py --report $(DEMO_OUT)/report.md $(PY_DEMO_FLAGS)

python-bindings:
	$(PYTHON3) python/tools/gen_bindings.py

# Every CPython >= 3.9 that pyenv has besides the venv's, each in a venv of its own.
test-python-versions: lib
	@for py in $$(ls -d $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.* 2>/dev/null); do \
		v=$$(basename $$py); case $$v in 3.[0-8].*) continue;; esac; \
		echo "== Python $$v"; \
		$$py/bin/python3 -m venv build/venv-$$v && \
		build/venv-$$v/bin/pip install -q --upgrade pip && \
		build/venv-$$v/bin/pip install -q $(PY_REQS) && \
		build/venv-$$v/bin/pip install -q --no-build-isolation --no-deps --force-reinstall ./python && \
		(cd python && FERRY_PY_SOAK=100000 ../build/venv-$$v/bin/python -m pytest -q -p no:cacheprovider tests) \
		|| exit 1; \
	done

TEST_TARGETS += test-python

# The README's Python example runs with the venv's interpreter (scripts/readme-examples.sh).
test-readme: python-install
