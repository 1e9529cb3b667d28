# The README's commands. Each one installs what is missing first, so a fresh Debian 12
# machine needs nothing else.
SHELL := /bin/bash
.DEFAULT_GOAL := build
ARCH ?= riscv64
# Guest kits the test suite boots (built once, then cached under ~/.cache/doppel/guests).
TEST_GUESTS ?= riscv64 x86_64

.PHONY: deps build debug guests test run clean

deps:
	@scripts/install-deps

build: deps
	@cmake --preset release >/dev/null
	@cmake --build --preset release

# Debug build with AddressSanitizer and UndefinedBehaviorSanitizer, in build-debug/.
debug: deps
	@cmake --preset debug >/dev/null
	@cmake --build --preset debug

guests: build
	@for arch in $(TEST_GUESTS); do build/doppel guest build --arch $$arch >/dev/null || exit 1; done

test: build guests
	@ctest --test-dir build --output-on-failure -j2

# Boots the default guest; its console is this terminal (Ctrl-A x quits), or stdin when
# stdin is not a terminal: echo 'uname -a; poweroff -f' | make run
run: build
	@build/doppel guest build --arch $(ARCH) >/dev/null
	@build/doppel run --arch $(ARCH)

clean:
	rm -rf build build-debug build-fuzz
