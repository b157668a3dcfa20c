# stepfs - build, test and install.
#
#   make                 build build/stepstore and build/stepfs
#   make check           unit tests, fuzz corpus replay and mount tests
#   make SANITIZE=address,undefined check
#   make fuzz            run every libFuzzer target for FUZZ_SECONDS each
#   make install         PREFIX, DESTDIR, BINDIR, MANDIR, DOCDIR,
#                        MOUNT_HELPER_DIR honoured; make uninstall

PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
DOCDIR ?= $(PREFIX)/share/doc/stepfs
# mount(8) looks for mount.TYPE helpers in /sbin only (also /sbin/fs.d and
# /sbin/fs), whatever the prefix; an install under any other prefix keeps
# the helper inside the prefix, where it can still be run by hand.
ifneq ($(filter /usr /usr/local /usr/ /usr/local/,$(PREFIX)),)
MOUNT_HELPER_DIR ?= /sbin
else
MOUNT_HELPER_DIR ?= $(PREFIX)/sbin
endif
DESTDIR ?=
VERSION := 0.1.0

CC ?= cc
PKGS := fuse3 jansson libzstd yaml-0.1
LIB_PKGS := jansson libzstd yaml-0.1

WARNINGS := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
	-Wwrite-strings -Wpointer-arith -Wformat=2 -Wcast-qual -Wundef \
	-Wvla -Wno-unused-parameter
ifeq ($(WERROR),1)
WARNINGS += -Werror
endif
ifdef CI
WARNINGS += -Werror
endif

OPT ?= -O2 -g
BUILD ?= build
CFLAGS_ALL := -std=c11 -D_GNU_SOURCE -DSF_VERSION='"$(VERSION)"' $(OPT) \
	$(WARNINGS) -pthread -MMD -MP $(CFLAGS)
LDFLAGS_ALL := -pthread $(LDFLAGS)

ifdef SANITIZE
CFLAGS_ALL += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer \
	-fno-sanitize-recover=all -DSF_DEBUG_MUTEX=1
LDFLAGS_ALL += -fsanitize=$(SANITIZE)
endif

LIB_CFLAGS := $(shell pkg-config --cflags $(LIB_PKGS))
LIB_LIBS := $(shell pkg-config --libs $(LIB_PKGS)) -lm
FUSE_CFLAGS := $(shell pkg-config --cflags fuse3)
FUSE_LIBS := $(shell pkg-config --libs fuse3)

LIB_SRC := $(wildcard codecs/*.c)
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)
LIB := $(BUILD)/libstepfs.a

UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)

FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
REPLAY_BIN := $(FUZZ_SRC:tests/fuzz/fuzz_%.c=$(BUILD)/tests/replay_%)

PROGRAMS := $(BUILD)/stepstore $(BUILD)/stepfs

all: $(PROGRAMS)

$(BUILD)/codecs/%.o: codecs/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $(LIB_CFLAGS) -c $< -o $@

$(BUILD)/codecs/tools/%.o: codecs/tools/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $(LIB_CFLAGS) -Icodecs -c $< -o $@

$(BUILD)/fs/%.o: fs/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $(LIB_CFLAGS) $(FUSE_CFLAGS) -Icodecs -c $< -o $@

$(LIB): $(LIB_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

TOOL_SRC := $(wildcard codecs/tools/*.c)
TOOL_OBJ := $(TOOL_SRC:%.c=$(BUILD)/%.o)

$(BUILD)/stepstore: $(TOOL_OBJ) $(LIB)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIB_LIBS)

$(BUILD)/stepfs: $(BUILD)/fs/stepfs.o $(LIB)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(FUSE_LIBS) $(LIB_LIBS)

$(BUILD)/tests/test_%: tests/unit/test_%.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $(LIB_CFLAGS) -Icodecs -Itests/unit $< -o $@ $(LIB) $(LDFLAGS_ALL) $(LIB_LIBS)

$(BUILD)/tests/replay_%: tests/fuzz/fuzz_%.c tests/fuzz/replay.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $(LIB_CFLAGS) -Icodecs $< tests/fuzz/replay.c -o $@ $(LIB) $(LDFLAGS_ALL) $(LIB_LIBS)

tests-bin: $(UNIT_BIN) $(REPLAY_BIN)

# The whole suite: TAP programs and scripts under prove.
check: all tests-bin
	BUILD=$(abspath $(BUILD)) SANITIZE=$(SANITIZE) prove -f --timer tests/run-unit.sh tests/run-replay.sh tests/integration/t*.sh

unit: tests-bin
	BUILD=$(abspath $(BUILD)) prove -f tests/run-unit.sh

# libFuzzer builds (clang), one binary per parser.
FUZZ_SECONDS ?= 60
FUZZ_CC ?= clang
FUZZ_BIN := $(FUZZ_SRC:tests/fuzz/fuzz_%.c=$(BUILD)/fuzz/fuzz_%)
$(BUILD)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(LIB_SRC)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) -std=c11 -D_GNU_SOURCE -DSF_VERSION='"$(VERSION)"' -g -O1 \
		-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all $(LIB_CFLAGS) -Icodecs \
		$< $(LIB_SRC) -o $@ $(LIB_LIBS) -pthread

# This one includes sf_jscan.c itself, to replace its read().
$(BUILD)/fuzz/fuzz_jscan_chunk: tests/fuzz/fuzz_jscan_chunk.c $(LIB_SRC)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) -std=c11 -D_GNU_SOURCE -DSF_VERSION='"$(VERSION)"' -g -O1 \
		-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all $(LIB_CFLAGS) -Icodecs \
		$< $(filter-out codecs/sf_jscan.c,$(LIB_SRC)) -o $@ $(LIB_LIBS) -pthread

fuzz: $(FUZZ_BIN)
	@for f in $(FUZZ_BIN); do \
		name=$${f##*/fuzz_}; mkdir -p tests/corpus/$$name; \
		echo "fuzzing $$name for $(FUZZ_SECONDS)s"; \
		$$f -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=$(BUILD)/fuzz/$$name- \
			tests/corpus/$$name || exit 1; \
	done

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(DOCDIR) \
		$(DESTDIR)$(MOUNT_HELPER_DIR)
	install -m 755 $(BUILD)/stepstore $(BUILD)/stepfs $(DESTDIR)$(BINDIR)/
	install -m 644 docs/man/stepfs.1 docs/man/stepstore.1 $(DESTDIR)$(MANDIR)/man1/
	install -m 644 docs/config.example.yaml $(DESTDIR)$(DOCDIR)/config.example.yaml
	sed 's|@BINDIR@|$(BINDIR)|g' fs/mount.fuse.stepfs.in >$(BUILD)/mount.fuse.stepfs
	install -m 755 $(BUILD)/mount.fuse.stepfs $(DESTDIR)$(MOUNT_HELPER_DIR)/mount.fuse.stepfs

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/stepstore $(DESTDIR)$(BINDIR)/stepfs \
		$(DESTDIR)$(MANDIR)/man1/stepfs.1 $(DESTDIR)$(MANDIR)/man1/stepstore.1 \
		$(DESTDIR)$(DOCDIR)/config.example.yaml \
		$(DESTDIR)$(MOUNT_HELPER_DIR)/mount.fuse.stepfs
	rmdir $(DESTDIR)$(DOCDIR) 2>/dev/null || true

clean:
	rm -rf $(BUILD)

.PHONY: all check unit tests-bin fuzz install uninstall clean
.SECONDARY:

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
