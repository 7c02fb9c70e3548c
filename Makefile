# aegis-run: one C binary embedding Lua 5.4.  See README.md.
#   make            build bin/aegis-run (installs missing Debian packages first)
#   make demo       quickstart on the embedded SQLite store + calls to the local emulator
#   make test       every spec; ends with "N passed, N failed"
#   make test-asan  the same under AddressSanitizer + UBSan
#   make test-valgrind   the same under valgrind memcheck
#   make bench      every benchmark under bench/
#   make fuzz       every libFuzzer target for FUZZ_SECONDS (120) each; make fuzz-replay: corpus + regressions
#   make docs       regenerate docs/api.md from the Lua doc comments
#   make PGO=0      build tree-sitter and the grammars without profile feedback (below)

CC ?= cc
CFLAGS ?= -O2 -g
override CFLAGS += -std=c11 -Wall -Wextra -Wshadow -Wundef -Wwrite-strings \
                   -Wmissing-prototypes -Wstrict-prototypes -fvisibility=hidden
# libpq and libcurl give headers only: they are dlopen-ed on first use (ag_dl.h)
PKGS := lua5.4 lua5.4-cjson sqlite3 libcrypto
PKGS_DL := libpq libcurl

# Debian packages: what the build, the tests and the demo need.
DEB := gcc make pkg-config openssl ca-certificates lua5.4 liblua5.4-dev \
       lua-cjson lua-cjson-dev lua-busted libsqlite3-dev sqlite3 libpq-dev \
       postgresql libcurl4-openssl-dev libssl-dev libmicrohttpd-dev python3 python3-jsonschema
DEB_NPM := npm
DEB_BENCH := hyperfine curl time
DEB_VALGRIND := valgrind

GRAMMAR_DIR := build/grammar
# The tree-sitter runtime: built from the npm package's amalgamation, not
# Debian's libtree-sitter0 0.20.7 (heap corruption past ~65,533 unclosed
# nesting levels; tools/tsruntime.sh).  Its headers come from the same package.
TSRT_DIR := build/tsruntime
TSRT_LIB := $(TSRT_DIR)/package/vendor/tree-sitter/lib
TSRT_STAMP := $(TSRT_DIR)/package/package.json
# Our objects depend on the stamp (touched when the package is unpacked):
# a new runtime version recompiles them against its headers.
TSRT_CFLAGS := -std=c11 -D_POSIX_C_SOURCE=200112L -D_DEFAULT_SOURCE -w -I$(TSRT_LIB)/src -I$(TSRT_LIB)/include
TSRT_OBJ := $(TSRT_DIR)/lib.o
# Versions named by `aegis-run --version`, read from the scripts that pin them.
TSRT_VERSION := $(shell sed -n 's/^version=//p' tools/tsruntime.sh)
GRAMMAR_VERSION := $(shell sed -n 's/^version=//p' tools/grammar.sh)
build/obj/lhost.o build/asan/lhost.o: tools/tsruntime.sh tools/grammar.sh
VERSION_DEFS := -DAG_TREE_SITTER_VERSION='"$(TSRT_VERSION)"' -DAG_GRAMMAR_VERSION='"$(GRAMMAR_VERSION)"'
build/obj/lhost.o build/asan/lhost.o: CFLAGS += $(VERSION_DEFS)
# ag_langtab.c copies a grammar's struct TSLanguage: it reads the grammar's
# own tree_sitter/parser.h (both grammars ship the same one).
build/obj/ag_langtab.o build/asan/ag_langtab.o: CFLAGS += -I$(GRAMMAR_DIR)/package/typescript/src
build/obj/ag_langtab.o build/asan/ag_langtab.o: $(GRAMMAR_DIR)/package/package.json
GRAMMAR_OBJ := $(GRAMMAR_DIR)/typescript_parser.o $(GRAMMAR_DIR)/typescript_scanner.o \
               $(GRAMMAR_DIR)/tsx_parser.o $(GRAMMAR_DIR)/tsx_scanner.o

SRC := $(sort $(wildcard runtime/*.c))
BINDINGS := $(filter runtime/l%.c,$(SRC))
EMBED := $(shell find lua providers rulepacks pipelines -type f \( -name '*.lua' -o -name '*.json' \) 2>/dev/null | sort)
HDR := $(wildcard runtime/*.h)

OBJ := $(patsubst runtime/%.c,build/obj/%.o,$(SRC)) build/obj/embed.o build/obj/modules.o
ASAN_OBJ := $(patsubst runtime/%.c,build/asan/%.o,$(SRC)) build/asan/embed.o build/asan/modules.o
ASAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

Q := @
.PHONY: all deps deps-npm demo docs test test-asan test-valgrind bench clean lint
.DEFAULT_GOAL := all

all: bin/aegis-run

deps:
	$(Q)tools/deps.sh $(DEB)
	$(Q)command -v npm >/dev/null 2>&1 || tools/deps.sh $(DEB_NPM)

# Read pkg-config only once the packages are there.
PKG_CFLAGS = -I$(TSRT_LIB)/include $(shell pkg-config --cflags $(PKGS) $(PKGS_DL))
PKG_LIBS = $(shell pkg-config --libs $(PKGS))

bin/aegis-run: $(OBJ) $(GRAMMAR_OBJ) $(TSRT_OBJ) | deps
	@mkdir -p bin
	@echo LINK $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $(OBJ) $(GRAMMAR_OBJ) $(TSRT_OBJ) $(PKG_LIBS) -lm

build/obj/%.o: runtime/%.c $(HDR) $(TSRT_STAMP) | deps
	@mkdir -p $(@D)
	@echo CC $<
	$(Q)$(CC) $(CFLAGS) $(PKG_CFLAGS) -Iruntime -c -o $@ $<

build/obj/%.o: build/gen/%.c runtime/host.h | deps $(TSRT_STAMP)
	@mkdir -p $(@D)
	@echo CC $<
	$(Q)$(CC) $(CFLAGS) $(PKG_CFLAGS) -Iruntime -c -o $@ $<

build/gen/embed.c: tools/embed.lua $(EMBED) | deps
	@mkdir -p $(@D)
	@echo GEN $@
	$(Q)lua5.4 tools/embed.lua $@ $(EMBED)

build/gen/modules.c: tools/modules.sh $(BINDINGS)
	@mkdir -p $(@D)
	@echo GEN $@
	$(Q)tools/modules.sh $@ $(BINDINGS)

# The grammar: fetched from npm with its integrity checked, never committed.
$(GRAMMAR_DIR)/package/package.json: tools/grammar.sh | deps
	$(Q)tools/grammar.sh $(GRAMMAR_DIR)
	@touch $@

# The tree-sitter runtime: fetched the same way, never committed.
$(TSRT_STAMP): tools/tsruntime.sh | deps
	$(Q)tools/tsruntime.sh $(TSRT_DIR)
	@touch $@
# Its internal assertions (every array index is one) are off here, as in a
# release build: 2.9 % fewer instructions and ~2.5 % less time in the parse
# (docs/benchmarks.md); the sanitizer build below keeps them.
TSRT_BUILD = -O2 -g -DNDEBUG $(TSRT_CFLAGS)
# Third-party generated C: compiled without our warning list.
GRAMMAR_BUILD = -O2 -std=c11 -w -I$(GRAMMAR_DIR)/package/$*/src

# Profile feedback (PGO) for the runtime and the grammars, the parse being
# two thirds of enforce's CPU: they are compiled once instrumented
# (build/pgo), linked with our objects as they are, the result run over the
# repository's own TypeScript (tools/pgo_train.sh: the rulepacks' specs,
# fixtures, fuzz corpora; never the bench corpus), and compiled again laid
# out by the counts it left (the parse ~7 %, enforce ~3 % less CPU:
# docs/benchmarks.md).
# Their sources are pinned, so this happens on the first build and when a
# pin changes, not when our code does (our objects are order-only here).
# PGO=0 builds them plainly.
PGO ?= 1
PGO_DIR := build/pgo
PGO_OBJ := $(PGO_DIR)/lib.o $(patsubst $(GRAMMAR_DIR)/%,$(PGO_DIR)/%,$(GRAMMAR_OBJ))
PGO_GEN := -fprofile-generate -fprofile-update=single
# An object compiled with the profile reads it as its instrumented twin's
# (-dumpdir, -dumpbase: the file, and the ids of static functions, which
# GCC derives from the object's name) wherever it goes.
ifeq ($(PGO),0)
pgo_use =
PGO_TRAINED :=
else
pgo_use = -fprofile-use -fprofile-partial-training -Wno-missing-profile -dumpdir $(PGO_DIR)/ -dumpbase $(1)
PGO_TRAINED := $(PGO_DIR)/trained
endif

$(PGO_DIR)/lib.o: $(TSRT_STAMP) Makefile
	@mkdir -p $(@D)
	@echo CC pgo tree-sitter lib.c
	$(Q)$(CC) $(TSRT_BUILD) $(PGO_GEN) -c -o $@ $(TSRT_LIB)/src/lib.c
$(PGO_DIR)/%_parser.o: $(GRAMMAR_DIR)/package/package.json Makefile
	@mkdir -p $(@D)
	@echo CC pgo grammar $*/parser.c
	$(Q)$(CC) $(GRAMMAR_BUILD) $(PGO_GEN) -c -o $@ $(GRAMMAR_DIR)/package/$*/src/parser.c
$(PGO_DIR)/%_scanner.o: $(GRAMMAR_DIR)/package/package.json Makefile
	@mkdir -p $(@D)
	@echo CC pgo grammar $*/scanner.c
	$(Q)$(CC) $(GRAMMAR_BUILD) $(PGO_GEN) -c -o $@ $(GRAMMAR_DIR)/package/$*/src/scanner.c
$(PGO_DIR)/aegis-run: $(PGO_OBJ) | $(OBJ) deps
	@echo LINK $@
	$(Q)$(CC) $(PGO_GEN) $(LDFLAGS) -o $@ $(OBJ) $(PGO_OBJ) $(PKG_LIBS) -lm
$(PGO_DIR)/trained: $(PGO_DIR)/aegis-run tools/pgo_train.sh
	$(Q)tools/pgo_train.sh $(PGO_DIR)/aegis-run $(PGO_DIR)
	@touch $@

$(TSRT_OBJ): $(TSRT_STAMP) Makefile $(PGO_TRAINED)
	@echo CC tree-sitter lib.c
	$(Q)$(CC) $(TSRT_BUILD) $(call pgo_use,lib) -c -o $@ $(TSRT_LIB)/src/lib.c
$(GRAMMAR_DIR)/%_parser.o: $(GRAMMAR_DIR)/package/package.json $(PGO_TRAINED)
	@echo CC grammar $*/parser.c
	$(Q)$(CC) $(GRAMMAR_BUILD) $(call pgo_use,$*_parser) -c -o $@ $(GRAMMAR_DIR)/package/$*/src/parser.c
$(GRAMMAR_DIR)/%_scanner.o: $(GRAMMAR_DIR)/package/package.json $(PGO_TRAINED)
	@echo CC grammar $*/scanner.c
	$(Q)$(CC) $(GRAMMAR_BUILD) $(call pgo_use,$*_scanner) -c -o $@ $(GRAMMAR_DIR)/package/$*/src/scanner.c

# Sanitizer build: same sources, its own objects, grammar shared; the
# tree-sitter runtime sanitized too (its heap is what B2 is about).
build/asan/aegis-run: $(ASAN_OBJ) $(GRAMMAR_OBJ) build/asan/tsruntime.o | deps
	@echo LINK $@
	$(Q)$(CC) $(ASAN_FLAGS) $(LDFLAGS) -o $@ $(ASAN_OBJ) $(GRAMMAR_OBJ) build/asan/tsruntime.o $(PKG_LIBS) -lm
build/asan/tsruntime.o: $(TSRT_STAMP)
	@mkdir -p $(@D)
	@echo CC asan tree-sitter lib.c
	$(Q)$(CC) -O1 -g $(ASAN_FLAGS) $(TSRT_CFLAGS) -c -o $@ $(TSRT_LIB)/src/lib.c
build/asan/%.o: runtime/%.c $(HDR) $(TSRT_STAMP) | deps
	@mkdir -p $(@D)
	@echo CC asan $<
	$(Q)$(CC) -O1 -g $(filter-out -O2,$(CFLAGS)) $(ASAN_FLAGS) $(PKG_CFLAGS) -Iruntime -c -o $@ $<
build/asan/%.o: build/gen/%.c runtime/host.h | deps $(TSRT_STAMP)
	@mkdir -p $(@D)
	$(Q)$(CC) -O1 -g $(filter-out -O2,$(CFLAGS)) $(ASAN_FLAGS) $(PKG_CFLAGS) -Iruntime -c -o $@ $<

demo: bin/aegis-run
	$(Q)examples/demo.sh

test: bin/aegis-run
	$(Q)tools/test.sh bin/aegis-run

test-asan: build/asan/aegis-run
	$(Q)ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  LSAN_OPTIONS=suppressions=$(CURDIR)/tools/lsan.supp:print_suppressions=0 \
	  tools/test.sh build/asan/aegis-run

test-valgrind: bin/aegis-run
	$(Q)tools/deps.sh $(DEB_VALGRIND)
	$(Q)AEGIS_WRAP="valgrind -q --child-silent-after-fork=yes --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite --suppressions=$(CURDIR)/tools/valgrind.supp" \
	  tools/test.sh bin/aegis-run

bench: bin/aegis-run
	$(Q)tools/deps.sh $(DEB_BENCH)
	$(Q)for b in bench/*/run.sh; do echo "== $$b"; $$b || exit 1; done

# The Lua API reference, from the doc comments (spec/unit/docs_spec.lua checks it is current).
API_SRC = $(shell find lua/aegis -name '*.lua' -not -path '*/_meta/*' -not -path '*/cli/*' | sort) lua/aegis/cli/init.lua
docs: | deps
	$(Q)lua5.4 tools/apidoc.lua $(API_SRC) > docs/api.md

lint:
	$(Q)command -v luacheck >/dev/null || tools/deps.sh lua-check
	$(Q)luacheck lua providers rulepacks pipelines spec examples bench fuzz

clean:
	rm -rf bin build/obj build/asan build/gen build/fuzz build/pgo $(TSRT_OBJ) $(GRAMMAR_OBJ)

include fuzz/Makefile.inc
