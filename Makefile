# mailward: `make` builds, `make run` runs a demo on loopback, `make test` runs
# every test (installing what it needs first), `make lint` checks the style.

VERSION    := 0.1.0
CC         ?= cc
PKGS       := libuv inih libcap lmdb libidn2

# Which wolfSSL (README, "Which wolfSSL"): by default Debian's libwolfssl-dev
# (security updates come with the system); `make WOLFSSL=asm` (or `make
# mailward-asm`) builds build-asm/mailward against a static wolfSSL built by
# scripts/build-wolfssl from Debian's own source package with its assembly
# paths (AES-NI, Intel speedups, SP x86_64 assembly), in build/wolfssl-asm;
# `make WOLFSSL=lean` (or `make mailward-lean`) the same assembly with
# mailward's own feature list instead of Debian's, in build/wolfssl-lean.
WOLFSSL    ?= system
ifneq ($(filter $(WOLFSSL),asm lean),)
WOLFSSL_DIR    := build/wolfssl-$(WOLFSSL)
WOLFSSL_LIB    := $(WOLFSSL_DIR)/lib/libwolfssl.a
WOLFSSL_CFLAGS := -I$(WOLFSSL_DIR)/include
WOLFSSL_LIBS   := $(WOLFSSL_LIB) -lm -lpthread -ldl
BUILD          ?= build-$(WOLFSSL)
else ifeq ($(WOLFSSL),system)
WOLFSSL_LIB    :=
WOLFSSL_CFLAGS := $(shell pkg-config --cflags wolfssl 2>/dev/null)
WOLFSSL_LIBS   := $(shell pkg-config --libs wolfssl 2>/dev/null)
else
$(error WOLFSSL=$(WOLFSSL): say WOLFSSL=system (the default), WOLFSSL=asm or WOLFSSL=lean)
endif

# The wolfSSL include path comes first, before any other package's.
PKG_CFLAGS := $(WOLFSSL_CFLAGS) $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null) $(WOLFSSL_LIBS)
WARN       := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wformat=2
CFLAGS     ?= -O2 -g
ALL_CFLAGS := -std=c11 -D_GNU_SOURCE -DMAILWARD_VERSION='"$(VERSION)"' $(WARN) \
              -Ilib $(PKG_CFLAGS) $(CFLAGS)
LDLIBS     := $(PKG_LIBS) -lresolv

# The test build: AddressSanitizer and UndefinedBehaviorSanitizer, no recovery.
SAN        := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
# With WOLFSSL=asm or lean, the tests run on that build (build-test-asm, ...).
TEST_BUILD := build-test$(if $(filter-out system,$(WOLFSSL)),-$(WOLFSSL))
# A plain `make test` (CI's command) then runs them all again on the lean
# build: tls.c has code that only a wolfSSL without OpenSSL's layer compiles
# (peer names, cipher bits, curves), and it is tested only there.  Saying
# WOLFSSL=... (system, asm, lean) runs the tests on that one build only.
TEST_ALSO  := $(if $(filter file,$(origin WOLFSSL)),lean)
TEST_FLAGS := CFLAGS="-O1 -g $(SAN) -DMAILWARD_SANITIZE" LDFLAGS="$(SAN)" BUILD=$(TEST_BUILD)

BUILD      ?= build
LIB_SRC    := $(wildcard lib/*.c)
LIB_OBJ    := $(LIB_SRC:%.c=$(BUILD)/%.o)
PROXY_SRC  := $(wildcard proxy/*.c)
PROXY_OBJ  := $(PROXY_SRC:%.c=$(BUILD)/%.o)
UNIT_SRC   := $(wildcard test/unit/test_*.c)
UNIT_BIN   := $(UNIT_SRC:test/unit/%.c=$(BUILD)/unit/%)
FUZZ_SRC   := $(wildcard test/fuzz/fuzz_*.c)
FUZZ_BIN   := $(FUZZ_SRC:test/fuzz/%.c=$(BUILD)/fuzz/%)

.PHONY: all deps run test unit integration install uninstall lint format bench clean \
        mailward-asm mailward-lean fuzz FORCE

all: $(BUILD)/mailward

# mailward against wolfSSL with its assembly paths (see WOLFSSL above).
mailward-asm mailward-lean: mailward-%:
	@$(MAKE) --no-print-directory WOLFSSL=$* build-$*/mailward

# Asked every time (quick when up to date): after a Debian update of
# libwolfssl-dev it rebuilds from the new source package, and mailward relinks.
build/wolfssl-asm/lib/libwolfssl.a build/wolfssl-lean/lib/libwolfssl.a: \
build/wolfssl-%/lib/libwolfssl.a: FORCE
	@scripts/build-wolfssl $*

FORCE:

$(BUILD)/%.o: %.c $(wildcard lib/*.h proxy/*.h) $(WOLFSSL_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/libmailward.a: $(LIB_OBJ)
	ar rcs $@ $^

$(BUILD)/mailward: $(PROXY_OBJ) $(BUILD)/libmailward.a $(WOLFSSL_LIB)
	$(CC) $(LDFLAGS) -o $@ $(PROXY_OBJ) $(BUILD)/libmailward.a $(LDLIBS)

$(BUILD)/unit/%: test/unit/%.c $(BUILD)/libmailward.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libmailward.a $(LDLIBS) -lcmocka

# Each fuzz harness with test/fuzz/replay.c's main(): scripts/run-tests
# replays test/fuzz/corpus/NAME/ through it (see `make fuzz` below).
$(BUILD)/fuzz/%: test/fuzz/%.c test/fuzz/replay.c test/fuzz/fuzz_check.h $(BUILD)/libmailward.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $< test/fuzz/replay.c $(BUILD)/libmailward.a $(LDLIBS)

units: $(UNIT_BIN) $(FUZZ_BIN)

# Install the packages every target needs (Debian, as root); quick when done.
deps:
	@scripts/install-deps

run: deps
	@$(MAKE) --no-print-directory all
	@scripts/run-demo

# Without Sendmail (fetch-sendmail failed: no archive) the other tests still
# run; t_sendmail then skips, which fails a run as root (README, "Testing").
test: deps
	@scripts/fetch-sendmail || echo "make: no Sendmail unpacked: t_sendmail will skip" >&2
	@$(MAKE) --no-print-directory $(TEST_FLAGS) $(TEST_BUILD)/mailward units
	@MAILWARD_BUILD=$(TEST_BUILD) scripts/run-tests
	@$(foreach w,$(TEST_ALSO),echo "== the same tests on WOLFSSL=$(w) ==" && \
	        $(MAKE) --no-print-directory test WOLFSSL=$(w) &&) true

unit: deps
	@$(MAKE) --no-print-directory $(TEST_FLAGS) units
	@MAILWARD_BUILD=$(TEST_BUILD) scripts/run-tests unit

integration: deps
	@scripts/fetch-sendmail || echo "make: no Sendmail unpacked: t_sendmail will skip" >&2
	@$(MAKE) --no-print-directory $(TEST_FLAGS) $(TEST_BUILD)/mailward
	@MAILWARD_BUILD=$(TEST_BUILD) scripts/run-tests integration

# `make install` copies the build of `make` (of `make WOLFSSL=lean` with
# WOLFSSL=lean, ...) and mailward's files under DESTDIR and PREFIX; it builds
# only when that build is missing or out of date. The configuration is
# installed only if there is none yet, and so is tlsrpt-report.env, the site's
# settings for mailward-tlsrpt.service (its timer is not enabled). `make
# uninstall` removes what install put there, except those two. README,
# "Installing as a service".
PREFIX      ?= /usr/local
SBINDIR     ?= $(PREFIX)/sbin
DATADIR     ?= $(PREFIX)/share
MANDIR      ?= $(DATADIR)/man
SYSCONFDIR  ?= /etc
UNITDIR     ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
TMPFILESDIR ?= $(PREFIX)/lib/tmpfiles.d
INSTALL     ?= install
POLICY_FILES = $(shell find policies -type f | LC_ALL=C sort)
POLICY_DIRS  = $(sort $(dir $(POLICY_FILES)))
DATA_SCRIPTS := scripts/import-eff-policy scripts/nft-redirect scripts/tlsrpt-report
CONF_FILE    = $(DESTDIR)$(SYSCONFDIR)/mailward/mailward.conf
TLSRPT_ENV   = $(DESTDIR)$(SYSCONFDIR)/mailward/tlsrpt-report.env
# Units written from scripts/UNIT.in with the install paths filled in.
UNITS_IN     := mailward.service mailward-tlsrpt.service
UNIT_SED     = sed -e 's|@SBINDIR@|$(SBINDIR)|g' -e 's|@DATADIR@|$(DATADIR)|g' \
                   -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g'

install: $(BUILD)/mailward
	$(INSTALL) -d -m 0755 $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8 \
	        $(DESTDIR)$(SYSCONFDIR)/mailward $(DESTDIR)$(DATADIR)/mailward \
	        $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSUSERSDIR) $(DESTDIR)$(TMPFILESDIR)
	$(INSTALL) -m 0755 $(BUILD)/mailward $(DESTDIR)$(SBINDIR)/mailward
	$(INSTALL) -m 0644 proxy/mailward.8 $(DESTDIR)$(MANDIR)/man8/mailward.8
	$(INSTALL) -m 0644 scripts/tlsrpt-report.8 $(DESTDIR)$(MANDIR)/man8/tlsrpt-report.8
	$(INSTALL) -m 0644 proxy/mailward.conf.5 $(DESTDIR)$(MANDIR)/man5/mailward.conf.5
	$(INSTALL) -m 0755 $(DATA_SCRIPTS) $(DESTDIR)$(DATADIR)/mailward/
	$(INSTALL) -d -m 0755 $(addprefix $(DESTDIR)$(DATADIR)/mailward/,$(POLICY_DIRS))
	for f in $(POLICY_FILES); do \
	        $(INSTALL) -m 0644 $$f $(DESTDIR)$(DATADIR)/mailward/$$f || exit 1; done
	for u in $(UNITS_IN); do \
	        $(UNIT_SED) scripts/$$u.in >$(DESTDIR)$(UNITDIR)/$$u.tmp && \
	        chmod 0644 $(DESTDIR)$(UNITDIR)/$$u.tmp && \
	        mv -f $(DESTDIR)$(UNITDIR)/$$u.tmp $(DESTDIR)$(UNITDIR)/$$u || exit 1; done
	$(INSTALL) -m 0644 scripts/mailward-tlsrpt.timer $(DESTDIR)$(UNITDIR)/mailward-tlsrpt.timer
	$(INSTALL) -m 0644 scripts/mailward.sysusers $(DESTDIR)$(SYSUSERSDIR)/mailward.conf
	$(INSTALL) -m 0644 scripts/mailward.tmpfiles $(DESTDIR)$(TMPFILESDIR)/mailward.conf
	@if [ -e $(CONF_FILE) ]; then \
	        echo "install: $(CONF_FILE) exists: not overwritten (the shipped one is proxy/mailward.conf)"; \
	else \
	        echo "$(INSTALL) -m 0644 proxy/mailward.conf $(CONF_FILE)"; \
	        $(INSTALL) -m 0644 proxy/mailward.conf $(CONF_FILE); \
	fi
	@if [ -e $(TLSRPT_ENV) ]; then \
	        echo "install: $(TLSRPT_ENV) exists: not overwritten (the shipped one is scripts/tlsrpt-report.env)"; \
	else \
	        echo "$(INSTALL) -m 0644 scripts/tlsrpt-report.env $(TLSRPT_ENV)"; \
	        $(INSTALL) -m 0644 scripts/tlsrpt-report.env $(TLSRPT_ENV); \
	fi

uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/mailward $(DESTDIR)$(MANDIR)/man8/mailward.8 \
	        $(DESTDIR)$(MANDIR)/man8/tlsrpt-report.8 \
	        $(DESTDIR)$(MANDIR)/man5/mailward.conf.5 \
	        $(addprefix $(DESTDIR)$(UNITDIR)/,$(UNITS_IN) mailward-tlsrpt.timer) \
	        $(DESTDIR)$(SYSUSERSDIR)/mailward.conf $(DESTDIR)$(TMPFILESDIR)/mailward.conf \
	        $(addprefix $(DESTDIR)$(DATADIR)/mailward/,$(notdir $(DATA_SCRIPTS)) $(POLICY_FILES))
	if [ -d $(DESTDIR)$(DATADIR)/mailward ]; then \
	        find $(DESTDIR)$(DATADIR)/mailward -depth -type d -empty -delete; fi
	@for f in $(CONF_FILE) $(TLSRPT_ENV); do \
	        if [ -e $$f ]; then echo "uninstall: kept $$f (remove it yourself)"; fi; done

# The benchmark (not part of `make test`): mailward against nginx's mail proxy
# and stunnel, see test/bench/README. The load client uses OpenSSL, not
# mailward's code; the crypto floor uses mailward's wolfSSL build.
BENCH_CFLAGS := -std=c11 -D_GNU_SOURCE -O2 -g $(WARN)

$(BUILD)/bench/loadgen: test/bench/loadgen.c
	@mkdir -p $(dir $@)
	$(CC) $(BENCH_CFLAGS) -o $@ $< -lssl -lcrypto

$(BUILD)/bench/crypto: test/bench/crypto.c lib/tls_suites.h $(WOLFSSL_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(BENCH_CFLAGS) -Ilib $(WOLFSSL_CFLAGS) -o $@ $< $(WOLFSSL_LIBS)

# `make bench WOLFSSL=lean` (or asm) measures that build of mailward and
# its crypto floor; the load client is the same for every build.
bench: deps
	@$(MAKE) --no-print-directory WOLFSSL=system BUILD=build build/bench/loadgen
	@$(MAKE) --no-print-directory $(BUILD)/mailward $(BUILD)/bench/crypto
	@test/bench/run --mailward $(BUILD)/mailward --crypto $(BUILD)/bench/crypto

# `make fuzz`: each harness built with clang's libFuzzer and run for
# FUZZ_SECONDS, starting from test/fuzz/corpus/NAME (copied: what it finds
# goes to build/fuzz-corpus/NAME, a crash to build/fuzz-crash/). Not part
# of `make test`, whose replay of the corpus is deterministic.
FUZZ_SECONDS ?= 60
FUZZ_CC      ?= clang
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=all
FUZZ_CFLAGS  := -std=c11 -D_GNU_SOURCE -DMAILWARD_VERSION='"$(VERSION)"' -g -O1 -Ilib $(PKG_CFLAGS)
FUZZ_OBJ     := $(LIB_SRC:lib/%.c=build/fuzz-clang/lib/%.o)

build/fuzz-clang/lib/%.o: lib/%.c $(wildcard lib/*.h)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link $(FUZZ_SAN) -c -o $@ $<

build/fuzz-clang/libmailward.a: $(FUZZ_OBJ)
	ar rcs $@ $^

fuzz: deps
	@command -v $(FUZZ_CC) >/dev/null || { echo "make fuzz needs clang (apt-get install clang)" >&2; exit 1; }
	@$(MAKE) --no-print-directory build/fuzz-clang/libmailward.a
	@mkdir -p build/fuzz-crash
	@set -e; for src in $(FUZZ_SRC); do \
	        name=$$(basename $$src .c); \
	        $(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer $(FUZZ_SAN) -o build/fuzz-clang/$$name \
	                $$src build/fuzz-clang/libmailward.a $(PKG_LIBS) -lresolv; \
	        mkdir -p build/fuzz-corpus/$$name; \
	        cp -n test/fuzz/corpus/$$name/* build/fuzz-corpus/$$name/ 2>/dev/null || true; \
	        echo "== $$name: $(FUZZ_SECONDS) s"; \
	        build/fuzz-clang/$$name -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	                -artifact_prefix=build/fuzz-crash/$$name- build/fuzz-corpus/$$name; \
	done

FORMAT_SRC := $(wildcard lib/*.[ch] proxy/*.[ch] test/unit/*.[ch] test/fuzz/*.[ch] test/bench/*.c)

# Python: the tests, their fixtures and the scripts (pyflakes: unused names,
# undefined names; a test that names a variable wrongly fails only when run).
PY_SRC = $(wildcard test/integration/*.py test/unit/*.py) scripts/import-eff-policy \
	scripts/tlsrpt-report test/bench/run test/fuzz/make-corpus

lint:
	clang-format --dry-run -Werror $(FORMAT_SRC)
	/usr/bin/python3 -m pyflakes $(PY_SRC)
	cppcheck --quiet --error-exitcode=1 --std=c11 --enable=warning,portability,performance \
	        --inline-suppr --suppress=missingIncludeSystem -Ilib lib proxy

format:
	clang-format -i $(FORMAT_SRC)

clean:
	rm -rf build build-test build-asm build-lean build-test-asm build-test-lean
