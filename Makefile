# nexvitad: the two commands a newcomer needs are `make demo` and `make test`.
SHELL := /bin/bash
ORT_LIB := $(CURDIR)/.ort/lib/libonnxruntime.so
export NEXVITAD_ORT_LIBRARY ?= $(ORT_LIB)
CARGO ?= cargo

.PHONY: all build ort demo test test-rust info clean

all: build

ort: $(ORT_LIB)
$(ORT_LIB):
	bash scripts/setup-ort.sh

build: ort
	$(CARGO) build --release
	cp -P .ort/lib/libonnxruntime.so* target/release/

demo: build
	./target/release/nexvitad demo

info: build
	./target/release/nexvitad info

test: ort test-rust

test-rust:
	$(CARGO) test --all-targets

clean:
	$(CARGO) clean
