# pg_vault: PGXS build of the extension, plus the development Vault server
# (vault/devserver) and the companion app (app/), all from one Makefile.
#
#   make                  build the extension and the programs
#   make install          install the extension (PG_CONFIG honoured)
#   make installcheck     pg_regress suites in sql/ + expected/ (needs a
#                         configured Vault; `make test` sets one up)
#   make test             every suite, against servers it starts itself
#   make demo             the whole system in the foreground

EXTENSION  = pg_vault
EXTVERSION = $(shell sed -n "s/^default_version[[:space:]]*=[[:space:]]*'\([^']*\)'.*/\1/p" $(EXTENSION).control)

MODULE_big = pg_vault
COMMON_SRCS = $(wildcard src/common/*.c)
OBJS = $(patsubst %.c,%.o,$(wildcard src/*.c) $(COMMON_SRCS))
DATA = $(wildcard sql/$(EXTENSION)--*.sql)
REGRESS = $(sort $(basename $(notdir $(filter-out sql/$(EXTENSION)--%,$(wildcard sql/*.sql)))))
REGRESS_OPTS = --inputdir=. --load-extension=$(EXTENSION)
EXTRA_CLEAN = vault/devserver/vault-dev app/pg-vault-app $(wildcard vault/devserver/*.o app/*.o) regression.diffs regression.out results

# PostgreSQL's own headers trip -Wunused-parameter and -Wsign-compare.
PG_CFLAGS = -Wall -Wextra -Werror -Wno-unused-parameter -Wno-sign-compare -Wno-missing-field-initializers
SHLIB_LINK = -lcurl -ljansson -lcrypto

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# ---- programs built beside the extension (plain C, not PGXS) ----
PROG_CC      ?= cc
PROG_CFLAGS  ?= -O2 -g
PROG_WARN     = -std=gnu11 -Wall -Wextra -Werror -Wno-unused-parameter -D_GNU_SOURCE
PROG_INCLUDE  = -Isrc/common -I$(shell $(PG_CONFIG) --includedir)

DEVSERVER      = vault/devserver/vault-dev
DEVSERVER_SRCS = $(wildcard vault/devserver/*.c) $(COMMON_SRCS)
DEVSERVER_HDRS = $(wildcard vault/devserver/*.h src/common/*.h)

all: $(DEVSERVER)

$(DEVSERVER): $(DEVSERVER_SRCS) $(DEVSERVER_HDRS)
	$(PROG_CC) $(PROG_CFLAGS) $(PROG_WARN) $(PROG_INCLUDE) -o $@ $(DEVSERVER_SRCS) \
		-lmicrohttpd -ljansson -lcrypto -lssl -lpq -lpthread

.PHONY: test demo deps bench
deps:
	@bash test/lib/deps.sh

test: deps
	@$(MAKE) --no-print-directory all
	@bash test/run

demo: deps
	@$(MAKE) --no-print-directory all
	@bash test/lib/demo.sh

bench: deps
	@$(MAKE) --no-print-directory all
	@bash bench/run
