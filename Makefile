# vdctl: one binary (build/vdctl) linking the orchestrator library.
#
#   make            build vdctl, the example server and the tests
#   make setup      install packages, start dockerd/libvirtd, build images
#   make run        the main job: set up, build, apply examples/quickstart.yaml
#   make test       set up, build, run every test (unit, integration, fuzz)
#   make check      build the library and unit tests with ASan and UBSan in
#                   build-san/ and run every unit test under them
#   make retest     run every test without set-up (on a ready machine)
#   make images     build the example workload's Docker image and VM images
#   make fuzz       run each fuzz target for FUZZ_SECONDS (default 600)

VERSION := 0.1.0
CC ?= gcc
PKGS := yaml-0.1 jansson
# libvirt's headers only: it is loaded when first used (orchestrator/libvirt_dl.c)
HDR_PKGS := libvirt
# the tests' HTTP client
TEST_PKGS := libcurl
# not in pkg-config: Debian's http-parser (the balancer's HTTP parsing)
LIBS := -lhttp_parser -lm -lpthread -ldl

WARN := -Wall -Wextra -Werror -Wstrict-prototypes -Wmissing-prototypes -Wshadow \
	-Wpointer-arith -Wcast-qual -Wsign-compare
BASE_CFLAGS := -std=c11 -D_GNU_SOURCE -O2 -g $(WARN)
CFLAGS ?=
override CFLAGS += $(BASE_CFLAGS) -Iinclude -MMD -MP
B := build

# SAN=1 (`make check`) builds with ASan and UBSan in a directory of its own,
# so sanitized objects never mix with build/'s: every object and binary there
# but the static example server is sanitized. UBSan halts at its first report.
SAN_DIR := build-san
SAN_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
ifdef SAN
B := $(SAN_DIR)
override CFLAGS += $(SAN_FLAGS)
endif

# pkg-config is asked only when building the library, so `make setup` runs
# on a machine that has none of the -dev packages yet.
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) $(HDR_PKGS) $(TEST_PKGS) 2>/dev/null)
PKG_LIBS = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
TEST_LIBS = $(shell pkg-config --libs $(TEST_PKGS) 2>/dev/null)
GIT_REV := $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)

LIB_SRC := $(sort $(wildcard orchestrator/*.c))
CLI_SRC := $(filter-out cli/lb_main.c,$(sort $(wildcard cli/*.c)))
SVC_SRC := $(sort $(wildcard examples/svc/*.c))
UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))
INTEG_SRC := $(sort $(wildcard tests/integration/test_*.c))
TESTLIB_SRC := $(sort $(wildcard tests/lib/*.c))

LIB_OBJ := $(LIB_SRC:%.c=$(B)/%.o)
CLI_OBJ := $(CLI_SRC:%.c=$(B)/%.o)
TESTLIB_OBJ := $(TESTLIB_SRC:%.c=$(B)/%.o)
# kept between builds, not remade for every test binary
.SECONDARY: $(TESTLIB_OBJ)
UNIT_BIN := $(UNIT_SRC:%.c=$(B)/%)
INTEG_BIN := $(INTEG_SRC:%.c=$(B)/%)

LIBORCH := $(B)/liborchestrator.a

# vdctl-lb: `vdctl balance` without the engines' libraries (cli/lb_main.c)
LEAN_OBJ := $(addprefix $(B)/,cli/lb_main.o cli/balance.o cli/usage.o orchestrator/ev.o \
	orchestrator/lb.o orchestrator/lb_client.o orchestrator/lb_upstream.o orchestrator/hist.o \
	orchestrator/units.o orchestrator/error.o orchestrator/log.o orchestrator/net.o \
	orchestrator/diag.o orchestrator/file.o orchestrator/signals.o)

.PHONY: all setup run test check retest images fuzz clean tests unit-tests
all: $(B)/vdctl $(B)/vdctl-lb $(B)/svc tests

$(B)/orchestrator/%.o: orchestrator/%.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -c -o $@ $<

$(B)/cli/%.o: cli/%.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -DVD_VERSION='"$(VERSION)"' -DVD_GIT_REV='"$(GIT_REV)"' -c -o $@ $<

$(B)/tests/lib/%.o: tests/lib/%.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -Itests/lib -c -o $@ $<

$(LIBORCH): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(B)/vdctl: $(CLI_OBJ) $(LIBORCH)
	$(CC) $(CFLAGS) -o $@ $(CLI_OBJ) $(LIBORCH) $(PKG_LIBS) $(LIBS)

$(B)/vdctl-lb: $(LEAN_OBJ)
	$(CC) $(CFLAGS) -o $@ $(LEAN_OBJ) -lhttp_parser -lm

# The example workload: static, so it runs in a FROM-scratch image and in a
# busybox initramfs.
$(B)/svc: $(SVC_SRC) $(wildcard examples/svc/*.h)
	@mkdir -p $(@D)
	$(CC) $(BASE_CFLAGS) -static -pthread -o $@ $(SVC_SRC)

tests: $(UNIT_BIN) $(INTEG_BIN)

# what the unit tests run: their binaries, vdctl and the example server
unit-tests: $(UNIT_BIN) $(B)/vdctl $(B)/svc

$(B)/tests/%: tests/%.c $(LIBORCH) $(TESTLIB_OBJ)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -Itests/lib -o $@ $< $(TESTLIB_OBJ) $(LIBORCH) \
		$(PKG_LIBS) $(TEST_LIBS) $(LIBS) -lcmocka

setup:
	scripts/setup.sh
	$(MAKE) --no-print-directory images

images: $(B)/svc
	scripts/images.sh

run: setup
	$(MAKE) --no-print-directory all
	scripts/run.sh

test: setup
	$(MAKE) --no-print-directory all
	tests/run.sh

# A sanitizer report fails the test binary that made it (tests/run.sh -b);
# leaks count (LeakSanitizer is on with ASan).
check:
	$(MAKE) --no-print-directory SAN=1 unit-tests
	tests/run.sh -u -b $(SAN_DIR)

retest: all
	tests/run.sh

fuzz: all
	tests/fuzz/run.sh $${FUZZ_SECONDS:-600}

clean:
	rm -rf $(B) $(SAN_DIR)

-include $(shell find $(B) -name '*.d' 2>/dev/null)
