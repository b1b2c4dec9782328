# pgautomator: PGXS build plus the two commands (make demo, make test).
EXTENSION    = pgautomator
EXTVERSION   = $(shell sed -n "s/^default_version[[:space:]]*=[[:space:]]*'\(.*\)'/\1/p" $(EXTENSION).control)

# The install script is assembled from the numbered parts under sql/.
SQL_PARTS    = $(sort $(wildcard sql/[0-9]*.sql))
DATA_built   = $(EXTENSION)--$(EXTVERSION).sql
DATA         = $(wildcard sql/updates/$(EXTENSION)--*--*.sql)
EXTRA_CLEAN  = $(EXTENSION)--*.sql

# The background worker library, once its sources exist.
C_SOURCES    = $(sort $(wildcard bgworker/*.c))
ifneq ($(C_SOURCES),)
MODULE_big   = $(EXTENSION)
OBJS         = $(C_SOURCES:.c=.o)
PG_CPPFLAGS  = -I$(srcdir)/bgworker
SHLIB_LINK_INTERNAL = $(libpq)
endif

PG_CONFIG   ?= pg_config
PGXS        := $(shell $(PG_CONFIG) --pgxs 2>/dev/null)
ifneq ($(PGXS),)
include $(PGXS)
endif

# PGXS does not track headers: every object depends on the shared one.
ifneq ($(C_SOURCES),)
$(OBJS): bgworker/pgautomator.h
endif

$(EXTENSION)--$(EXTVERSION).sql: $(SQL_PARTS) $(EXTENSION).control Makefile
	@echo "-- pgautomator $(EXTVERSION): generated from sql/*.sql by make; do not edit." > $@
	@printf '%s\n' '\echo Use "CREATE EXTENSION pgautomator" to load this file. \quit' >> $@
	@for f in $(SQL_PARTS); do printf '\n-- ===== %s =====\n' "$$f" >> $@; cat "$$f" >> $@; done

# PGXN metadata: the version comes from the control file only.
META.json: META.json.in $(EXTENSION).control
	sed 's/@VERSION@/$(EXTVERSION)/g' $< > $@

# A PGXN distribution: the committed tree plus the generated META.json.
# (refused while the version or META.json differ from HEAD: the archive is
# HEAD's, and its name would not match what it holds)
dist: META.json
	@git diff --quiet HEAD -- $(EXTENSION).control META.json || \
		{ echo "commit $(EXTENSION).control and META.json first: make dist packs HEAD" >&2; exit 1; }
	git archive --format zip --prefix=$(EXTENSION)-$(EXTVERSION)/ -o $(EXTENSION)-$(EXTVERSION).zip HEAD

.PHONY: deps test demo demo-stop bench bench-quick lint dist bench-schedules
# Installs what the commands need (apt packages, .venv); idempotent.
deps:
	@scripts/deps.sh

test:
	@scripts/deps.sh
	@scripts/test.sh

demo:
	@scripts/deps.sh
	@scripts/demo.sh start

demo-stop:
	@scripts/demo.sh stop

lint:
	@scripts/deps.sh
	@scripts/lint.sh

# Side by side with pg_cron and pgAgent on a private cluster (bench/README.md):
# the full run takes 20-30 minutes, bench-quick under two.
bench:
	@scripts/deps.sh
	@bench/bench.sh $(BENCH_ARGS)

bench-quick:
	@scripts/deps.sh
	@bench/bench.sh --quick $(BENCH_ARGS)

# The schedule engine benchmark (README.md "Schedules"): its own private cluster.
bench-schedules:
	@scripts/deps.sh
	@.venv/bin/python bench/schedule_bench.py
