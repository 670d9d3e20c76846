# SPDX-License-Identifier: LGPL-2.1-only
# One Makefile for the daemon, its tests and its benchmarks.
#   make            build build/squeezed
#   make run        install what is missing, build, start on the simulated host
#   make test       install what is missing, build, run every test (normal, sanitizers,
#                   valgrind, a short fuzz run)
#   make bench      build and run the benchmarks
# BUILD=dir SAN=1   a build with AddressSanitizer + UndefinedBehaviorSanitizer

BUILD ?= build
SAN ?=
CC ?= cc
PKG_CONFIG ?= pkg-config

WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
        -Wpointer-arith -Wsign-compare -Werror
DEPCFLAGS := $(shell $(PKG_CONFIG) --cflags jansson libmicrohttpd 2>/dev/null)
CFLAGS ?= -O2 -g
ALL_CFLAGS := -std=c11 -D_GNU_SOURCE $(WARN) $(CFLAGS) -I. $(DEPCFLAGS) -MMD -MP
LDLIBS_BASE := -ljansson -lmicrohttpd -lpthread -lm
XENLIBS := -lxenctrl -lxenstore
CMOCKA := -lcmocka

ifneq ($(SAN),)
ALL_CFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS += -fsanitize=address,undefined
endif

# Everything but the daemon (daemon/: its entry point and wiring) and the real Xen
# backend goes into one library.
LIB_SRCS := $(wildcard common/*.c policy/*.c cache/*.c api/*.c sim/*.c server/*.c) \
            $(filter-out backend/xen.c,$(wildcard backend/*.c))
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o)
XEN_OBJ := $(BUILD)/obj/backend/xen.o
DAEMON_OBJ := $(BUILD)/obj/daemon/daemon.o
# The fake libxenctrl/libxenstore; fakexen_main.c is the fake-Xen daemon's entry point.
FAKEXEN_SRCS := $(filter-out tests/fakexen/fakexen_main.c,$(wildcard tests/fakexen/*.c))
FAKEXEN_OBJS := $(FAKEXEN_SRCS:%.c=$(BUILD)/obj/%.o)
# tests/support: what the test and bench binaries share (world builders, an HTTP client,
# a fault-injecting backend, checks), as a library: each binary takes the pieces it uses
# (the benches no cmocka checks). The recording mock of server/service.h is apart: it
# would shadow the real service, so only the binaries named in MOCK_SERVICE_TESTS get it.
MOCK_SERVICE_OBJ := $(BUILD)/obj/tests/support/mock_service.o
SUPPORT_SRCS := $(filter-out tests/support/mock_service.c,$(wildcard tests/support/*.c))
SUPPORT_OBJS := $(SUPPORT_SRCS:%.c=$(BUILD)/obj/%.o)
SUPPORT_LIB := $(BUILD)/libtestsupport.a
MOCK_SERVICE_TESTS := $(addprefix $(BUILD)/tests/,test_rpc test_http test_metrics test_openapi)
TEST_SRCS := $(wildcard tests/test_*.c)
TEST_BINS := $(TEST_SRCS:tests/%.c=$(BUILD)/tests/%)
BENCH_SRCS := $(wildcard bench/bench_*.c)
BENCH_BINS := $(BENCH_SRCS:bench/%.c=$(BUILD)/bench/%)
LIBSQ := $(BUILD)/libsqueezed.a

DAEMON := $(BUILD)/squeezed
DAEMON_FAKEXEN := $(BUILD)/squeezed-fakexen

.PHONY: all daemon tests benches run test bench fuzz deps deps-test clean format format-check
all: $(DAEMON)
daemon: $(DAEMON)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(LIBSQ): $(LIB_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@
	ar rcs $@ $^

$(SUPPORT_LIB): $(SUPPORT_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@
	ar rcs $@ $^

$(DAEMON): $(BUILD)/obj/daemon/main.o $(DAEMON_OBJ) $(XEN_OBJ) $(LIBSQ)
	$(CC) $(LDFLAGS) -o $@ $^ $(XENLIBS) $(LDLIBS_BASE)

# The daemon with the very same backend/xen.c linked against the fake libxenctrl and
# libxenstore of tests/fakexen (built on the simulated host), from its own entry point.
$(DAEMON_FAKEXEN): $(BUILD)/obj/tests/fakexen/fakexen_main.o $(DAEMON_OBJ) $(XEN_OBJ) \
                   $(FAKEXEN_OBJS) $(LIBSQ)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS_BASE)

# TEST_EXTRA_OBJS: objects one test binary needs and the others must not have.
$(MOCK_SERVICE_TESTS): $(MOCK_SERVICE_OBJ)
$(MOCK_SERVICE_TESTS): TEST_EXTRA_OBJS := $(MOCK_SERVICE_OBJ)

# harness.o is linked whole (not only from the library): its constructor makes jansson
# allocate through xmalloc in every test binary, as in the daemon.
HARNESS_OBJ := $(BUILD)/obj/tests/support/harness.o
$(BUILD)/tests/%: tests/%.c $(SUPPORT_LIB) $(XEN_OBJ) $(FAKEXEN_OBJS) $(LIBSQ)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $< $(TEST_EXTRA_OBJS) $(HARNESS_OBJ) $(SUPPORT_LIB) $(XEN_OBJ) \
		$(FAKEXEN_OBJS) $(LIBSQ) $(CMOCKA) $(LDLIBS_BASE)

$(BUILD)/bench/%: bench/%.c $(SUPPORT_LIB) $(XEN_OBJ) $(FAKEXEN_OBJS) $(LIBSQ)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $< $(SUPPORT_LIB) $(XEN_OBJ) $(FAKEXEN_OBJS) \
		$(LIBSQ) $(LDLIBS_BASE)

# The bare libmicrohttpd server bench/bench_http.sh measures the daemon against.
REFSERVER := $(BUILD)/bench/refserver
$(REFSERVER): bench/refserver.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $< -lmicrohttpd -lpthread

tests: $(DAEMON) $(DAEMON_FAKEXEN) $(TEST_BINS)
benches: $(BENCH_BINS) $(DAEMON) $(REFSERVER)

deps:
	@sh scripts/deps.sh build
deps-test:
	@sh scripts/deps.sh test

run: deps
	@$(MAKE) --no-print-directory all
	@sh scripts/run.sh $(DAEMON)

test: deps-test
	@$(MAKE) --no-print-directory tests
	@$(MAKE) --no-print-directory BUILD=build/asan SAN=1 tests
	@sh tests/run.sh

bench: deps
	@sh scripts/deps.sh bench
	@$(MAKE) --no-print-directory benches
	@sh bench/run.sh $(BUILD)

# libFuzzer (tests/fuzz): the library once more, built with clang, coverage and the
# sanitizers into build/fuzz/obj (apart from the gcc builds), the request-path target, and
# `make fuzz FUZZ_SECONDS=N`: a run on a copy of the seed corpus (tests/fuzz/run.sh).
FUZZ_DIR := build/fuzz
FUZZ_CC ?= clang
FUZZ_SECONDS ?= 300
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=undefined \
            -fno-omit-frame-pointer
FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE $(WARN) -O1 -g $(FUZZ_SAN) -I. $(DEPCFLAGS) -MMD -MP
FUZZ_LIB_OBJS := $(LIB_SRCS:%.c=$(FUZZ_DIR)/obj/%.o)
FUZZ_BIN := $(FUZZ_DIR)/fuzz_rpc

$(FUZZ_DIR)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

$(FUZZ_BIN): $(FUZZ_DIR)/obj/tests/fuzz/fuzz_rpc.o $(FUZZ_DIR)/obj/tests/support/paths.o \
             $(FUZZ_LIB_OBJS)
	$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer -o $@ $^ $(LDLIBS_BASE)

fuzz: $(FUZZ_BIN)
	@sh tests/fuzz/run.sh $(FUZZ_BIN) $(FUZZ_SECONDS)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

# The check `make test` runs too (tests/stages/format.sh): names the files that drift.
format-check:
	@sh tests/stages/format.sh

clean:
	rm -rf build

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
-include $(shell find $(FUZZ_DIR)/obj -name '*.d' 2>/dev/null)
