# pibake: the single facade. See README.md.
SHELL := /bin/bash
GO ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
export PATH := $(PATH):/usr/local/go/bin:/usr/sbin:/sbin
export CGO_ENABLED := 0

VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
PIBAKE := bin/pibake
IMAGE ?= images/demo.yaml
ENV ?=
BOARD ?=
IMAGE_NAME := $(basename $(notdir $(IMAGE)))
# The board: BOARD=, else the first of the definition's boards: list.
FIRST_BOARD = $(shell awk '/^boards:/ { sub(/^boards:[ \t]*\[?[ \t]*/, ""); if ($$0 != "") { split($$0, a, /[] ,]+/); print a[1]; exit } f = 1; next } f && /^[ \t]*- / { sub(/^[ \t]*- */, ""); print; exit }' $(IMAGE))
TARGET_BOARD = $(or $(BOARD),$(FIRST_BOARD))
# pibake build's own default: out/NAME-BOARD, out/NAME-BOARD-ENV.
OUT = out/$(IMAGE_NAME)-$(TARGET_BOARD)$(if $(ENV),-$(ENV))
PREFIX ?= /usr/local
DESTDIR ?=
# The device programs (the initramfs init, the update agent), compiled
# for arm64 with the flags every build uses, to be embedded in pibake.
DEVICE_PROGRAMS := internal/deviceprog/programs

.PHONY: all deps build install deb image flash publish test test-unit e2e e2e-edge soak bench fuzz lock clean

all: build

deps:
	@scripts/deps.sh

# pibake with the device programs inside (build tag pibake_embed): it
# builds images from any folder, with no pibake source or Go around.
build:
	$(GO) run internal/deviceprog/gen.go -version $(VERSION) -out $(DEVICE_PROGRAMS)
	$(GO) build -tags pibake_embed -trimpath -ldflags "-X main.version=$(VERSION)" -o $(PIBAKE) ./cmd/pibake

# Install pibake as a tool: make install [PREFIX=/usr/local] [DESTDIR=]
# (docs/install.md).
install: build
	install -D -m 0755 $(PIBAKE) $(DESTDIR)$(PREFIX)/bin/pibake

# A Debian package of the installed tool, the same bytes for the same
# commit: make deb [DEB=bin/pibake_VERSION_ARCH.deb] (docs/install.md).
DEB ?= bin/pibake_$(shell scripts/deb.sh debversion $(VERSION))_$(shell dpkg --print-architecture 2>/dev/null).deb
deb: build
	scripts/deb.sh $(PIBAKE) $(VERSION) $(DEB)

# Build the default image into out/NAME-BOARD[-ENV]/ (IMAGE=, ENV=,
# BOARD= to change; BOARD defaults to the definition's first board).
image: deps build
	$(PIBAKE) build $(if $(ENV),--env $(ENV)) --board $(TARGET_BOARD) --out $(OUT) $(IMAGE)
	$(PIBAKE) inspect $(OUT)/$(IMAGE_NAME).img

# Write the image to a card (builds it first if out/NAME-BOARD[-ENV]/ has
# none): make flash DEVICE=/dev/sdX [BOARD=pi4] [ENV=] [PROVISION=FILE].
# Only the blocks of NAME.bmap are written, then read back and checked
# (docs/flashing.md).
flash: build
	@test -n "$(DEVICE)" || { echo "make flash: set DEVICE=/dev/sdX (the whole card, not a partition)" >&2; exit 2; }
	@test -e $(OUT)/$(IMAGE_NAME).img.zst || $(MAKE) image IMAGE=$(IMAGE) ENV=$(ENV) BOARD=$(TARGET_BOARD)
	$(PIBAKE) flash $(if $(PROVISION),--provision $(PROVISION)) $(OUT)/$(IMAGE_NAME).img.zst $(DEVICE)

# Add the build in out/NAME-BOARD[-ENV]/ to an update repository:
# make publish CHANNEL=stable REPO=DIR KEY=FILE [BOARD=] [ENV=] (docs/updates.md).
publish: build
	@test -n "$(CHANNEL)" -a -n "$(REPO)" -a -n "$(KEY)" || { echo "make publish: set CHANNEL=, REPO= and KEY= (a key from 'pibake keygen')" >&2; exit 2; }
	@test -e $(OUT)/manifest.json || $(MAKE) image IMAGE=$(IMAGE) ENV=$(ENV) BOARD=$(TARGET_BOARD)
	$(PIBAKE) publish --repo $(REPO) --channel $(CHANNEL) --key $(KEY) $(OUT)

# Resolve and pin the Debian packages of IMAGE again.
lock: deps build
	$(PIBAKE) lock $(IMAGE)

# Everything: unit tests, real image builds checked with sfdisk, fsck.vfat
# and unsquashfs (PIBAKE_REAL=1), and the QEMU boots of e2e/ (PIBAKE_E2E=1),
# run by scripts/test.sh. The QEMU stories start first and run in two
# lanes (TestUpdate, TestPi4, TestDocker and TestProvisionImager in one;
# TestEdge, TestPi3Fallback and TestBoot in the other) when the machine
# has a core free for the second (e2e/sched_test.go); once they have
# chosen, the other packages run beside them, one at a time
# (PIBAKE_TEST_SERIAL=1: after them). A story fails when its guest makes
# no progress for 10 minutes, not at a fixed time, so a busy machine is
# slower, not failing. Caches live in ~/.cache/pibake. Each package's
# time and each story's are printed at the end, slowest first.
test: deps
	$(GO) vet ./...
	GO=$(GO) scripts/test.sh

# Boot images under QEMU (e2e/): first boot, reboot, the
# update and watchdog story, the edge stack's boot, update and rollback,
# the demo under Docker, and the pi3 (slot fallback) and pi4 builds on
# QEMU's raspi3b and raspi4b.
e2e: deps
	PIBAKE_E2E=1 $(GO) test -timeout 150m -count=1 -parallel 3 -v ./e2e/

# The edge story alone: the reference stack's first boot, v2 as a delta
# with the data kept, v3 rolled back (make e2e and make test run it too).
e2e-edge: deps
	PIBAKE_E2E=1 $(GO) test -run '^TestEdge$$' -timeout 90m -count=1 -v ./e2e/

# Real power cuts (e2e/powercut_test.go): QEMU is killed SOAK_CUTS times
# at random moments of the update story, in every phase of it, SOAK_CHAIN
# cuts (default 3) a run of a leg; after them the device must settle on
# the release's verdict with /data clean. The seed is printed; SOAK_SEED=N
# replays a campaign (same SOAK_CUTS and SOAK_CHAIN), SOAK_ONLY=3,17 only
# the chains of those cuts. Every finished cut is appended to
# ~/.cache/pibake/soak/ledger.tsv and the ledger's totals end the run:
# SOAK_RESUME=1 goes on with the ledger's last plan of these settings,
# skipping the chains it holds, SOAK_FOR=2h starts no chain after that
# time (docs/building.md, "Real power cuts"), SOAK_FROM=N begins the
# plan at its chain N (the earlier chains' ledger is another machine's).
# SOAK_LANES=2 runs two
# chains at once, each its own QEMU guest (default 1; on the 2-core
# machine two made 26.6 cuts an hour, one 17), SOAK_SMP=1 gives
# each guest one vCPU (default 2). PIBAKE_SOAK_SAMPLE=1 make e2e adds a
# sample of three to the stories; make test makes one, in TestUpdate.
SOAK_CUTS ?= 100
SOAK_CHAIN ?= 3
SOAK_LANES ?= 1
soak: deps
	PIBAKE_E2E=1 PIBAKE_SOAK_CUTS=$(SOAK_CUTS) PIBAKE_SOAK_CHAIN=$(SOAK_CHAIN) $(if $(SOAK_SEED),PIBAKE_SOAK_SEED=$(SOAK_SEED)) $(if $(SOAK_ONLY),PIBAKE_SOAK_ONLY=$(SOAK_ONLY)) \
	  $(if $(SOAK_RESUME),PIBAKE_SOAK_RESUME=1) $(if $(SOAK_FOR),PIBAKE_SOAK_FOR=$(SOAK_FOR)) $(if $(SOAK_FROM),PIBAKE_SOAK_FROM=$(SOAK_FROM)) \
	  PIBAKE_SOAK_LANES=$(SOAK_LANES) $(if $(SOAK_SMP),PIBAKE_SOAK_SMP=$(SOAK_SMP)) \
	  $(GO) test -run '^TestPowerCut$$' -timeout 48h -count=1 -v ./e2e/

# Figures, never assertions: FAT writing, the root filesystem transform,
# and the fleet simulation with FLEET_N devices (default 10,000): its
# rollout, halt and broker restart, the load of an idle fleet and its
# extrapolation to 1,000,000 devices (docs/fleet.md, "The scale proof").
# DELTA=DIR adds the delta-update figures on real releases in DIR
# (scripts/delta-demo.sh DIR builds them; the figures read DIR/art).
FLEET_N ?= 10000
bench: deps
	$(GO) test -run '^$$' -bench . -benchmem -count=1 ./disk/fat/ ./builder/rootfs/
	set -o pipefail; PIBAKE_FLEETSIM_N=$(FLEET_N) $(GO) test -run . -v -count=1 -timeout 60m ./internal/fleetsim/ | grep -v '^=== RUN'
	$(if $(DELTA),PIBAKE_DELTA=$(DELTA)/art $(GO) test -run TestDeltaFigures -v -count=1 -timeout 30m ./internal/deltabench/)

# Fuzz every parser of outside bytes for FUZZTIME each (make test runs
# their seed corpora). Crashes land in testdata/fuzz/ of the package.
FUZZTIME ?= 30s
FUZZ := ./updater/state:FuzzParse ./updater/report:FuzzParse ./bootchain:FuzzParseState \
	./bootchain:FuzzParseAutoboot ./updater/channel:FuzzVerify ./updater/channel:FuzzVerifyChunks \
	./updater/config:FuzzOverride ./updater/install:FuzzOpenBundle \
	./bootchain:FuzzParseCmdline ./disk/mbr:FuzzRead \
	./firmware/uboot/ubootcheck:FuzzParseScriptImage ./firmware/uboot:FuzzParseKernelHeader \
	./firmware/fdt:FuzzParse ./builder/debian:FuzzReadLock ./builder/imagedef:FuzzParse \
	./provision:FuzzParse ./provision:FuzzCloudInit ./provision:FuzzShadow \
	./disk/bmap:FuzzParse ./updater/chunks:FuzzParse ./publish:FuzzReadHistory \
	./updater/patch:FuzzParse
fuzz:
	@set -e; for t in $(FUZZ); do \
		echo "== $${t%%:*} $${t##*:} ($(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$${t##*:}$$" -fuzztime $(FUZZTIME) "$${t%%:*}" 2>&1 | grep -E 'fuzz: elapsed.*execs|FAIL|panic|^ok|failing input' | tail -3; \
	done

# Fast tests only: no Debian bootstrap.
test-unit:
	$(GO) test -count=1 ./...

clean:
	rm -rf bin out $(DEVICE_PROGRAMS)
