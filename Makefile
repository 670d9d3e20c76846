# SPDX-License-Identifier: LGPL-2.1-only
# One Makefile for the daemon, its tests and its benchmarks.
#   make            build build/squeezed
#   make run        install what is missing, build, start on the simulated host
#   make test       install what is missing, build, run every test (normal, sanitizers,
#                   valgrind, a short fuzz run)
#   make bench      build and run the benchmarks
#   make install    the daemon, squeezed(8), /etc/squeezed.conf (if absent), the systemd
#                   unit and openapi.json under DESTDIR + PREFIX (default /usr/local)
#   make uninstall  remove them (the config only while it is the unchanged sample)
#   make deb        a Debian package (dpkg-buildpackage) in build/deb/
# BUILD=dir SAN=1   a build with AddressSanitizer + UndefinedBehaviorSanitizer

BUILD ?= build
SAN ?=
CC ?= cc
PKG_CONFIG ?= pkg-config

WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
        -Wpointer-arith -Wsign-compare -Werror
DEPCFLAGS := $(shell $(PKG_CONFIG) --cflags jansson libmicrohttpd libxml-2.0 2>/dev/null)
CFLAGS ?= -O2 -g
ALL_CFLAGS := -std=c11 -D_GNU_SOURCE $(WARN) $(CPPFLAGS) $(CFLAGS) -I. $(DEPCFLAGS) -MMD -MP
LDLIBS_BASE := -ljansson -lmicrohttpd -lxml2 -lpthread -lm
XENLIBS := -lxenctrl -lxenstore
# sd_notify (Type=notify readiness); only the daemon's entry point uses it.
SYSTEMDLIBS := -lsystemd
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
# The dashboard page (api/ui/index.html) built into the binary as a C array by
# scripts/embed.sh (od + awk; no xxd needed).
UI_HTML := api/ui/index.html
UI_GEN := $(BUILD)/gen/ui_index.c
LIB_OBJS += $(BUILD)/obj/gen/ui_index.o
# The command-line client (cli/), over libcurl.
CLI := $(BUILD)/squeezed-cli
CLI_SRCS := $(wildcard cli/*.c)
CLI_OBJS := $(CLI_SRCS:%.c=$(BUILD)/obj/%.o)
CURL_CFLAGS := $(shell $(PKG_CONFIG) --cflags libcurl 2>/dev/null)
CURL_LIBS := $(shell $(PKG_CONFIG) --libs libcurl 2>/dev/null || echo -lcurl)
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

.PHONY: all daemon tests benches run test bench fuzz deps deps-test clean format format-check \
        install uninstall deb
all: $(DAEMON) $(CLI)
daemon: $(DAEMON)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(UI_GEN): $(UI_HTML) scripts/embed.sh
	@mkdir -p $(dir $@)
	sh scripts/embed.sh $(UI_HTML) api_ui_index_html >$@.tmp && mv $@.tmp $@

$(BUILD)/obj/gen/ui_index.o: $(UI_GEN)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/obj/cli/%.o: cli/%.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(CURL_CFLAGS) -c $< -o $@

$(CLI): $(CLI_OBJS) $(BUILD)/obj/common/xalloc.o
	$(CC) $(LDFLAGS) -o $@ $^ $(CURL_LIBS) -ljansson

$(LIBSQ): $(LIB_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@
	ar rcs $@ $^

$(SUPPORT_LIB): $(SUPPORT_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@
	ar rcs $@ $^

$(DAEMON): $(BUILD)/obj/daemon/main.o $(DAEMON_OBJ) $(XEN_OBJ) $(LIBSQ)
	$(CC) $(LDFLAGS) -o $@ $^ $(XENLIBS) $(SYSTEMDLIBS) $(LDLIBS_BASE)

# The daemon with the very same backend/xen.c linked against the fake libxenctrl and
# libxenstore of tests/fakexen (built on the simulated host), from its own entry point.
$(DAEMON_FAKEXEN): $(BUILD)/obj/tests/fakexen/fakexen_main.o $(DAEMON_OBJ) $(XEN_OBJ) \
                   $(FAKEXEN_OBJS) $(LIBSQ)
	$(CC) $(LDFLAGS) -o $@ $^ $(SYSTEMDLIBS) $(LDLIBS_BASE)

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

tests: $(DAEMON) $(DAEMON_FAKEXEN) $(CLI) $(TEST_BINS)
benches: $(BENCH_BINS) $(DAEMON) $(REFSERVER)

deps:
	@sh scripts/deps.sh build
deps-test:
	@sh scripts/deps.sh test

run: deps
	@$(MAKE) --no-print-directory all
	@sh scripts/run.sh $(DAEMON)

# The two builds compile on every processor, unless make was given -j itself (its job
# server is then shared; MAKEFLAGS shows it to recipes only).
NPROC := $(shell getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)

test: deps-test
	@case " $$MAKEFLAGS" in *" -j"*) j= ;; *) j=-j$(NPROC) ;; esac; \
	$(MAKE) --no-print-directory $$j tests && \
	$(MAKE) --no-print-directory $$j BUILD=build/asan SAN=1 tests
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
FUZZ_LIB_OBJS := $(LIB_SRCS:%.c=$(FUZZ_DIR)/obj/%.o) $(FUZZ_DIR)/obj/gen/ui_index.o
FUZZ_BIN := $(FUZZ_DIR)/fuzz_rpc

$(FUZZ_DIR)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

$(FUZZ_DIR)/obj/gen/ui_index.o: $(UI_GEN)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

$(FUZZ_BIN): $(FUZZ_DIR)/obj/tests/fuzz/fuzz_rpc.o $(FUZZ_DIR)/obj/tests/support/paths.o \
             $(FUZZ_LIB_OBJS)
	$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer -o $@ $^ $(LDLIBS_BASE)

fuzz: $(FUZZ_BIN)
	@sh tests/fuzz/run.sh $(FUZZ_BIN) $(FUZZ_SECONDS)

# Installing: PREFIX for the program and its data; the configuration is where xapi's
# squeezed reads it (/etc/squeezed.conf) whatever the prefix.
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
SBINDIR ?= $(PREFIX)/sbin
DATADIR ?= $(PREFIX)/share
MANDIR ?= $(DATADIR)/man
SYSCONFDIR ?= /etc
UNITDIR ?= $(PREFIX)/lib/systemd/system
INSTALL ?= install

install: $(DAEMON) $(CLI)
	$(INSTALL) -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man8 \
		$(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(DATADIR)/squeezed $(DESTDIR)$(UNITDIR) \
		$(DESTDIR)$(SYSCONFDIR)
	$(INSTALL) -m 0755 $(DAEMON) $(DESTDIR)$(SBINDIR)/squeezed
	$(INSTALL) -m 0755 $(CLI) $(DESTDIR)$(BINDIR)/squeezed-cli
	$(INSTALL) -m 0644 dist/squeezed.8 $(DESTDIR)$(MANDIR)/man8/squeezed.8
	$(INSTALL) -m 0644 dist/squeezed-cli.1 $(DESTDIR)$(MANDIR)/man1/squeezed-cli.1
	$(INSTALL) -m 0644 openapi.json $(DESTDIR)$(DATADIR)/squeezed/openapi.json
	sed 's|@SBINDIR@|$(SBINDIR)|g' dist/squeezed.service.in \
		>$(DESTDIR)$(UNITDIR)/squeezed.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/squeezed.service
	@if [ -e $(DESTDIR)$(SYSCONFDIR)/squeezed.conf ]; then \
		echo "install: keeping $(DESTDIR)$(SYSCONFDIR)/squeezed.conf" \
			"(the sample is dist/squeezed.conf)"; \
	else \
		echo "$(INSTALL) -m 0644 dist/squeezed.conf $(DESTDIR)$(SYSCONFDIR)/squeezed.conf"; \
		$(INSTALL) -m 0644 dist/squeezed.conf $(DESTDIR)$(SYSCONFDIR)/squeezed.conf; \
	fi

uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/squeezed $(DESTDIR)$(MANDIR)/man8/squeezed.8 \
		$(DESTDIR)$(BINDIR)/squeezed-cli $(DESTDIR)$(MANDIR)/man1/squeezed-cli.1 \
		$(DESTDIR)$(DATADIR)/squeezed/openapi.json $(DESTDIR)$(UNITDIR)/squeezed.service
	-rmdir $(DESTDIR)$(DATADIR)/squeezed 2>/dev/null
	@if cmp -s dist/squeezed.conf $(DESTDIR)$(SYSCONFDIR)/squeezed.conf; then \
		echo "rm -f $(DESTDIR)$(SYSCONFDIR)/squeezed.conf"; \
		rm -f $(DESTDIR)$(SYSCONFDIR)/squeezed.conf; \
	elif [ -e $(DESTDIR)$(SYSCONFDIR)/squeezed.conf ]; then \
		echo "uninstall: keeping $(DESTDIR)$(SYSCONFDIR)/squeezed.conf (changed)"; \
	fi

# dpkg-buildpackage writes its results next to the source tree: build from a copy in
# build/deb/src so that they land in build/deb/.
DEB_DIR := build/deb
deb:
	rm -rf $(DEB_DIR)
	mkdir -p $(DEB_DIR)/src
	tar --exclude=./build --exclude=./.git --exclude=node_modules -cf - . \
		| tar -C $(DEB_DIR)/src -xf -
	cd $(DEB_DIR)/src && dpkg-buildpackage -us -uc -b
	@ls -1 $(DEB_DIR)/*.deb

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

# The check `make test` runs too (tests/stages/format.sh): names the files that drift.
format-check:
	@sh tests/stages/format.sh

clean:
	rm -rf build

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
-include $(shell find $(FUZZ_DIR)/obj -name '*.d' 2>/dev/null)
