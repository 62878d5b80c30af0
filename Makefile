# nexvitad: the two commands a newcomer needs are `make demo` and `make test`.
SHELL := /bin/bash
ORT_LIB := $(CURDIR)/.ort/lib/libonnxruntime.so
export NEXVITAD_ORT_LIBRARY ?= $(ORT_LIB)
CARGO ?= cargo

.PHONY: all build ort demo test test-rust info clean fuzz

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
