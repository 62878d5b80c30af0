# nexvitad: the two commands a newcomer needs are `make demo` and `make test`. Each runs
# scripts/setup.sh first (`--demo`: ONNX Runtime only; full: system packages, ONNX Runtime,
# .venv), before anything is compiled.
SHELL := /bin/bash
ORT_LIB := $(CURDIR)/.ort/lib/libonnxruntime.so
export NEXVITAD_ORT_LIBRARY ?= $(ORT_LIB)
# The Python that tests/integration/parity.rs and test-python use: .venv, made by scripts/setup.sh.
VENV_PYTHON := $(CURDIR)/.venv/bin/python
export NEXVITAD_PYTHON ?= $(VENV_PYTHON)
# Go for the Go binding: the first on PATH, else the usual /usr/local/go (as scripts/setup.sh).
ifeq ($(filter /usr/local/go/bin,$(subst :, ,$(PATH))),)
export PATH := $(PATH):/usr/local/go/bin
endif
CARGO ?= cargo

.PHONY: all build ort setup setup-demo demo run-demo test test-suites test-rust test-python test-c c-install test-sanitize matrix-doc test-bindings test-cpp test-csharp test-go lib-release install info clean fuzz

all: build

ort: $(ORT_LIB)
$(ORT_LIB):
	bash scripts/setup-ort.sh

build: ort
	$(CARGO) build --release
	cp -P .ort/lib/libonnxruntime.so* target/release/

setup:
	bash scripts/setup.sh

setup-demo:
	bash scripts/setup.sh --demo

# The set-up runs to its end before the build starts (a sub-make, so also under -j).
demo: setup-demo
	$(MAKE) --no-print-directory run-demo

run-demo: build
	./target/release/nexvitad demo

info: build
	./target/release/nexvitad info

# Every suite: the full set-up first (nothing is compiled before it is done), then Rust,
# C, the C++/C#/Go bindings, tests/python and the sanitizer pass.
test: setup
	$(MAKE) --no-print-directory test-suites

test-suites: test-rust test-c test-bindings test-python test-sanitize

test-rust:
	$(CARGO) test --all-targets

# tests/python/test_*.py (the ONNX export, with torch and timm) in .venv.
test-python:
	@compgen -G 'tests/python/test_*.py' >/dev/null || \
		{ echo "test-python: no tests/python/test_*.py: nothing to run (a missing suite fails, it is not skipped)" >&2; exit 1; }
	@test -x $(VENV_PYTHON) || \
		{ echo "test-python: $(VENV_PYTHON) not found: run scripts/setup.sh (make test does)" >&2; exit 1; }
	$(VENV_PYTHON) -m pytest -q tests/python

# ---- C ABI: `make install PREFIX=...` and the C tests ------------------------------------
PREFIX ?= /usr/local
CARGO_OUT := $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)/release
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
SOMAJOR := $(firstword $(subst ., ,$(VERSION)))
# What libnexvitad.a needs from the system (`rustc --print native-static-libs`).
STATIC_LIBS := -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc
# The same as a CMake list (threads and dl come from Threads::Threads and CMAKE_DL_LIBS).
empty :=
space := $(empty) $(empty)
STATIC_LIBS_CMAKE := $(subst $(space),;,$(patsubst -l%,%,$(filter-out -lc -lpthread -ldl,$(STATIC_LIBS))))
C_TEST_PREFIX := $(CURDIR)/build/install
LIBDEST = $(DESTDIR)$(PREFIX)/lib

lib-release: ort
	$(CARGO) build --release -p nexvitad --lib

# lib/libnexvitad.so{,.$(SOMAJOR),.$(VERSION)}, lib/libnexvitad.a, include/nexvitad.h,
# pkg-config and CMake files, and ONNX Runtime beside libnexvitad.so (found there at run time).
# The shared library is installed stripped, its debug info split off the way distributions do
# it: `objcopy --only-keep-debug` into lib/libnexvitad.so.$(VERSION).debug beside it, `strip
# --strip-debug --strip-unneeded`, then `objcopy --add-gnu-debuglink`, so gdb, valgrind and
# Rust backtraces still find file:line through the .gnu_debuglink section (packagers may move
# the .debug file to /usr/lib/debug/<its path>, where gdb and valgrind also look).
# `make install INSTALL_STRIP=0` installs the library unstripped, with no .debug file.
INSTALL_STRIP ?= 1
OBJCOPY ?= objcopy
STRIP ?= strip
SONAME_FILE = libnexvitad.so.$(VERSION)
install: lib-release
	install -d $(LIBDEST)/pkgconfig $(LIBDEST)/cmake/nexvitad $(DESTDIR)$(PREFIX)/include
	install -m 755 $(CARGO_OUT)/libnexvitad.so $(LIBDEST)/$(SONAME_FILE)
	rm -f $(LIBDEST)/$(SONAME_FILE).debug
ifeq ($(INSTALL_STRIP),1)
	cd $(LIBDEST) && $(OBJCOPY) --only-keep-debug $(SONAME_FILE) $(SONAME_FILE).debug && \
		chmod 644 $(SONAME_FILE).debug && \
		$(STRIP) --strip-debug --strip-unneeded $(SONAME_FILE) && \
		$(OBJCOPY) --add-gnu-debuglink=$(SONAME_FILE).debug $(SONAME_FILE)
endif
	ln -sfn libnexvitad.so.$(VERSION) $(LIBDEST)/libnexvitad.so.$(SOMAJOR)
	ln -sfn libnexvitad.so.$(SOMAJOR) $(LIBDEST)/libnexvitad.so
	install -m 644 $(CARGO_OUT)/libnexvitad.a $(LIBDEST)/libnexvitad.a
	install -m 644 include/nexvitad.h $(DESTDIR)$(PREFIX)/include/nexvitad.h
	cp -Pf .ort/lib/libonnxruntime.so* $(LIBDEST)/
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' -e 's|@STATIC_LIBS@|$(STATIC_LIBS)|g' \
		cmake/nexvitad.pc.in > $(LIBDEST)/pkgconfig/nexvitad.pc
	sed -e 's|@VERSION@|$(VERSION)|g' -e 's|@SOMAJOR@|$(SOMAJOR)|g' \
		-e 's|@STATIC_LIBS_CMAKE@|$(STATIC_LIBS_CMAKE)|g' \
		cmake/nexvitad-config.cmake.in > $(LIBDEST)/cmake/nexvitad/nexvitad-config.cmake
	sed -e 's|@VERSION@|$(VERSION)|g' cmake/nexvitad-config-version.cmake.in \
		> $(LIBDEST)/cmake/nexvitad/nexvitad-config-version.cmake

# A fresh install into build/install: what the C, C++, C# and Go tests build against.
c-install: lib-release
	rm -rf $(C_TEST_PREFIX)
	$(MAKE) --no-print-directory install PREFIX=$(C_TEST_PREFIX)

# Builds the C tests, the bad-input matrix and the example against build/install (pkg-config
# and CMake) and runs them, under valgrind too (missing valgrind fails; see tests/c/run.sh).
test-c: c-install
	bash tests/c/run.sh $(C_TEST_PREFIX)

# The C tests and the C++ binding's tests again, built with -fsanitize=address,undefined
# (Debian gcc's runtime) against the same libnexvitad.so. Part of `make test` (last).
# See docs/reliability.md.
test-sanitize: c-install
	bash tests/c/sanitize.sh $(C_TEST_PREFIX)

# Rewrites the bad-input matrix table in docs/reliability.md from tests/c/test_matrix.c
# (`make test-c` fails while the two differ).
matrix-doc: c-install
	bash tests/c/matrix-doc.sh --write $(C_TEST_PREFIX)

# The C++, C# and Go bindings, each against the tree `test-c` installed in build/install.
test-bindings: test-cpp test-csharp test-go

test-cpp: test-c
	bash bindings/cpp/test.sh $(C_TEST_PREFIX)

test-csharp: test-c
	bash bindings/csharp/test.sh $(C_TEST_PREFIX)

test-go: test-c
	bash bindings/go/test.sh $(C_TEST_PREFIX)

clean:
	$(CARGO) clean

# Fuzzing (not part of `test`): each cargo-fuzz target for FUZZ_SECONDS, under AddressSanitizer,
# on the nightly toolchain (`cargo install cargo-fuzz`). Seeds are read from fuzz/corpus/<target>;
# what the fuzzer adds goes to fuzz/work/<target> (ignored), crashes to fuzz/artifacts/<target>.
# See docs/reliability.md.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= bank_loader manifest image_view mvtec_reader head_loader
FUZZ_FLAGS ?= -rss_limit_mb=2048 -timeout=10

fuzz:
	@for t in $(FUZZ_TARGETS); do \
		mkdir -p fuzz/work/$$t && \
		echo "== fuzz $$t for $(FUZZ_SECONDS) s" && \
		env -u CARGO_TARGET_DIR cargo +nightly fuzz run $$t fuzz/work/$$t fuzz/corpus/$$t -- \
			-max_total_time=$(FUZZ_SECONDS) $(FUZZ_FLAGS) || exit 1; \
	done
