# imgsearch build. `make` builds bin/imgsearchd; `make test` runs the whole suite;
# `make run` starts the server on its embedded defaults. Both install Debian
# packages first (scripts/install-deps.sh is a no-op when they are present).

CC       ?= gcc
CXX      ?= g++
JOBS     ?= 2
WARN      = -Wall -Wextra -Werror
CSTD      = -std=c11 -D_GNU_SOURCE
# libpq (the PostgreSQL back end, storage/sql_pg.c): its headers live in
# /usr/include/postgresql on Debian; pkg-config says so where it can. LIBS
# names -lpq literally: tests and scripts read that line to link the library.
PQ_CFLAGS := $(shell pkg-config --cflags libpq 2>/dev/null || echo -I/usr/include/postgresql)
INCLUDES  = -I. -I/usr/include/jansson $(PQ_CFLAGS)
DEPFLAGS  = -MMD -MP
OPT       = -O2 -g
SAN       =

LIBS = -lmicrohttpd -ljansson -lsqlite3 -lpq -lcurl -lssl -lcrypto -lturbojpeg -ljpeg -lpng \
       -lwebp -linih -lfaiss -lopenblas -llapack -fopenmp -lstdc++ -lm -lpthread

# Everything except the programs' main() files is one library, linked into the
# server, the CLI and every unit test.
LIB_C    = $(sort $(wildcard config/*.c server/*.c storage/*.c index/*.c))
LIB_C   := $(filter-out server/main.c,$(LIB_C))
LIB_CXX  = $(sort $(wildcard index/*.cpp))
TEST_C   = $(sort $(wildcard tests/*/test_*.c))
FUZZ_C   = $(sort $(wildcard tests/fuzz/fuzz_*.c))
CLI_C    = $(sort $(wildcard cli/*.c))

# BUILD is build/release or build/asan; BIN gets a suffix for the asan variant.
BUILD    ?= build/release
SUFFIX   ?=

LIB_OBJ  = $(LIB_C:%.c=$(BUILD)/%.o) $(LIB_CXX:%.cpp=$(BUILD)/%.o)
LIB_A    = $(BUILD)/libimgsearch.a
TEST_BIN = $(TEST_C:%.c=$(BUILD)/%)

.PHONY: all server cli tests asan run test model projection fuzz clean deps format bench

all: server cli tests

server: bin/imgsearchd$(SUFFIX)
cli: $(if $(CLI_C),bin/imgsearch$(SUFFIX))
tests: $(TEST_BIN)

# An archive, so each program pulls in only the objects it uses.
$(LIB_A): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@
	ar rcs $@ $^

bin/imgsearchd$(SUFFIX): $(BUILD)/server/main.o $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(SAN) -o $@ $^ $(LIBS)

bin/imgsearch$(SUFFIX): $(CLI_C:%.c=$(BUILD)/%.o) $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(SAN) -o $@ $^ $(LIBS)

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(SAN) -o $@ $^ $(LIBS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CSTD) $(WARN) $(OPT) $(SAN) $(INCLUDES) $(DEPFLAGS) -pthread -c -o $@ $<

$(BUILD)/%.o: %.cpp
	@mkdir -p $(dir $@)
	$(CXX) -std=c++17 $(WARN) $(OPT) $(SAN) $(INCLUDES) $(DEPFLAGS) -fopenmp -c -o $@ $<

# ASan + UBSan variant: bin/imgsearchd-asan and build/asan/tests/*.
asan:
	$(MAKE) BUILD=build/asan SUFFIX=-asan OPT="-O1 -g -fno-omit-frame-pointer" \
	    SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined" all

deps:
	scripts/install-deps.sh

model:
	scripts/fetch-model.sh

# The compact-descriptor projections (issue 9), fitted on a pinned Debian photo
# package: models/projection-*.bin. Not yet part of `model`: the server does
# not use them until compact descriptors land.
projection: model $(LIB_A)
	scripts/train-projection

run: deps
	$(MAKE) -j$(JOBS) server
	scripts/fetch-model.sh
	bin/imgsearchd $(ARGS)

test: deps
	tests/run.sh

# libFuzzer targets, run for FUZZ_SECONDS each (the suite runs them briefly).
FUZZ_SECONDS ?= 60
fuzz:
	scripts/fuzz.sh $(FUZZ_SECONDS)

bench:
	scripts/bench-all

format:
	clang-format -i $$(git ls-files '*.c' '*.h' '*.cpp')

clean:
	rm -rf build bin

-include $(shell find build -name '*.d' 2>/dev/null)
