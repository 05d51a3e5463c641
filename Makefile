# idsync: PGXS build of the extension, its tests and the helper commands.
# The version lives in META.json, idsync.control and the install script name; a regress test
# checks that they agree.

EXTENSION = idsync
EXTVERSION = $(shell sed -n "s/^default_version = '\(.*\)'/\1/p" idsync.control)
MODULE_big = idsync
OBJS = $(patsubst %.cpp,%.o,$(sort $(wildcard extension/*.cpp)))
# The install script of the current version is made from the sources in sql/src, one file per
# concern, in this order (each file only uses what comes before it); the scripts of older
# versions and the upgrade scripts are kept as released.
SQL_SOURCES = $(addprefix sql/src/,catalog.sql insert_missing.sql points_and_hashes.sql \
	node.sql state_access.sql registration.sql content_hash.sql changes_out.sql merges.sql \
	plans.sql housekeeping.sql roles.sql)
CURRENT_SCRIPT = sql/idsync--$(EXTVERSION).sql
DATA = $(sort $(filter-out $(CURRENT_SCRIPT),$(wildcard sql/idsync--*.sql)) $(CURRENT_SCRIPT))
EXTRA_CLEAN = $(CURRENT_SCRIPT) $(OBJS:.o=.d)

# -MMD: each object also depends on the headers it includes (extension/*.d), so that a changed
# struct rebuilds every file that uses it.
PG_CXXFLAGS = -std=c++17 -Wno-register -Wextra -Wno-unused-parameter -Wno-missing-field-initializers -MMD -MP
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
-include $(OBJS:.o=.d)

all: $(CURRENT_SCRIPT)
$(CURRENT_SCRIPT): $(SQL_SOURCES) idsync.control
	{ printf -- '-- idsync %s, the whole SQL surface. Made by make from sql/src/*.sql: edit those.\n' '$(EXTVERSION)'; \
	  printf '\\echo Use "CREATE EXTENSION idsync" to load this file. \\quit\n'; \
	  for f in $(SQL_SOURCES); do printf '\n-- %s\n' "$$f"; cat "$$f"; done; } > $@

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
