# idsync: PGXS build of the extension, its tests and the helper commands.
# The version lives in META.json, idsync.control and the install script name; a regress test
# checks that they agree.

EXTENSION = idsync
MODULE_big = idsync
OBJS = $(patsubst %.cpp,%.o,$(sort $(wildcard extension/*.cpp)))
DATA = $(wildcard sql/idsync--*.sql)

PG_CXXFLAGS = -std=c++17 -Wno-register -Wextra -Wno-unused-parameter -Wno-missing-field-initializers
SHLIB_LINK = -lstdc++
# No LLVM bitcode for JIT inlining: it would need clang, and idsync has no expressions to inline.
override with_llvm = no

REGRESS = $(patsubst tests/regress/sql/%.sql,%,$(sort $(wildcard tests/regress/sql/*.sql)))
REGRESS_OPTS = --inputdir=tests/regress --load-extension=idsync
ISOLATION = $(patsubst tests/isolation/specs/%.spec,%,$(sort $(wildcard tests/isolation/specs/*.spec)))
ISOLATION_OPTS = --inputdir=tests/isolation --load-extension=idsync

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# idsyncd has its own Makefile (a C++ program, not a PGXS module); built and installed with
# the extension.
.PHONY: format test demo bench daemon install-daemon clean-daemon
all: daemon
install: install-daemon
clean: clean-daemon
daemon:
	$(MAKE) -C daemon
install-daemon:
	$(MAKE) -C daemon install
clean-daemon:
	$(MAKE) -C daemon clean

format:
	clang-format -i extension/*.cpp extension/*.hpp
	$(MAKE) -C daemon format

# The README's commands; each installs its own Debian packages.
test:
	bash scripts/test
demo:
	bash scripts/demo
bench:
	bash bench/insert_missing.sh
