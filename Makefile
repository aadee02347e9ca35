# twofold: the newcomer's commands.
#   make test       install the system packages the tests need (apt-get), then fmt, clippy, docs, tests
#   make build      release build of the workspace, man pages and completions (target/assets)
#   make install    build, then install (DESTDIR, PREFIX honoured); make uninstall
#   make deb        the Debian package (debian/, dpkg-buildpackage) in target/debian/, lintian-clean
#   make demo       a sandbox (as root): private bus + daemon, sshd on 127.0.0.1, a demo account
#   make console-demo  the same for the Cockpit admin console: cockpit-ws on 127.0.0.1:9090
#   make fleet-demo    the same for a fleet: a private slapd, two sshd "hosts" keeping 2FA state in it
#   make bench      twofold against google-authenticator-libpam, files against LDAP, at scale: bench/results.md
#   make stress     minutes of abuse (not in CI): bench/stress-results.md, see docs/RELIABILITY.md

# System packages the test suite uses: oathtool (independent TOTP codes), the PAM wrappers and
# pamtester (real libpam in tests), libpam0g-dev (links pam_twofold.so), passwd (useradd in tests),
# openssh-server + python3-paramiko (a real sshd on 127.0.0.1 and a keyboard-interactive client),
# dbus-daemon (a private bus for twofold-enrolld), zbar-tools (decodes the QR codes of `twofold enroll`
# and of the SSH enrollment prompt, rendered as dark and light terminals show them), expect (drives
# OpenSSH's own ssh client at a terminal through an enrollment inside the login),
# dbus + systemd (the package's dependencies; systemd-analyze checks the unit), pkg-config (install paths),
# sudo (the README's sudo stack, through sudoers' pam_service), polkitd (a real polkit on the
# daemon tests' private bus: enrolld/tests/daemon_polkit.rs), cockpit-ws + cockpit-bridge +
# cockpit-system (the admin console served by a real Cockpit) with chromium, chromium-driver and
# python3-selenium (the console's browser test drives a headless Chromium through WebDriver),
# libpam-google-authenticator (its google-authenticator tool writes the files `twofold import` reads);
# debhelper + dpkg-dev + lintian (the packaging test builds the package with dpkg-buildpackage
# and checks it with lintian); slapd + ldap-utils + nslcd + libnss-ldapd (the LDAP tests start a
# private slapd, and nslcd in a mount namespace of their own: tests/src/slapd.rs; never sssd,
# whose package edits /etc/nsswitch.conf).
APT_PACKAGES := oathtool libpam-wrapper libnss-wrapper pamtester libpam0g-dev passwd util-linux \
  dbus-daemon dbus-bin zbar-tools dbus systemd pkg-config \
  openssh-server openssh-client python3-paramiko expect sudo e2fsprogs polkitd \
  cockpit-ws cockpit-bridge cockpit-system chromium chromium-driver python3-selenium \
  libpam-google-authenticator debhelper dpkg-dev lintian \
  slapd ldap-utils nslcd libnss-ldapd
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
CARGO ?= cargo

# Install layout. The PAM module directory comes from libpam's pkg-config (libdir/security),
# the systemd unit directory from systemd's; the rest follows PREFIX.
PREFIX ?= /usr
SYSCONFDIR ?= /etc
LOCALSTATEDIR ?= /var
BINDIR ?= $(PREFIX)/bin
SBINDIR ?= $(PREFIX)/sbin
MANDIR ?= $(PREFIX)/share/man
DATADIR ?= $(PREFIX)/share
PAM_LIBDIR := $(shell pkg-config --variable=libdir pam 2>/dev/null || echo /lib/$$(gcc -print-multiarch))
PAMDIR ?= $(PAM_LIBDIR)/security
UNITDIR ?= $(shell pkg-config --variable=systemdsystemunitdir systemd 2>/dev/null || echo /lib/systemd/system)
# Where the built binaries and generated assets are taken from (tests point these at a debug build).
BIN_DIR ?= target/release
ASSET_DIR ?= target/assets
INSTALL_OWNER := $(shell [ "$$(id -u)" -eq 0 ] && echo "-o root -g root")
INSTALL := install $(INSTALL_OWNER)
# The Cockpit page (the admin console): plain files, no build step.
COCKPIT_FILES := $(wildcard packaging/cockpit/twofold/*)

.PHONY: stress bench apt demo console-demo fleet-demo all build assets test deps fmt-check clippy doc unit install install-files uninstall deb deb-files deb-build hot-symbols

all: build

build:
	$(CARGO) build --workspace --release
	$(MAKE) assets

assets:
	$(BIN_DIR)/twofold generate-assets $(ASSET_DIR)

install: build install-files

# Everything `make install` lays out, from BIN_DIR and ASSET_DIR, without building.
install-files:
	$(INSTALL) -d -m 0755 $(DESTDIR)$(BINDIR) $(DESTDIR)$(SBINDIR) $(DESTDIR)$(PAMDIR) \
	  $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man8 \
	  $(DESTDIR)$(DATADIR)/bash-completion/completions $(DESTDIR)$(DATADIR)/zsh/vendor-completions \
	  $(DESTDIR)$(DATADIR)/fish/vendor_completions.d \
	  $(DESTDIR)$(DATADIR)/dbus-1/system.d $(DESTDIR)$(DATADIR)/dbus-1/system-services \
	  $(DESTDIR)$(UNITDIR) $(DESTDIR)$(DATADIR)/pam-configs \
	  $(DESTDIR)$(DATADIR)/cockpit/twofold \
	  $(DESTDIR)$(SYSCONFDIR)/twofold $(DESTDIR)$(SYSCONFDIR)/twofold/policy.d
	$(INSTALL) -d -m 0700 $(DESTDIR)$(LOCALSTATEDIR)/lib/twofold
	$(INSTALL) -m 0755 $(BIN_DIR)/twofold $(DESTDIR)$(BINDIR)/twofold
	$(INSTALL) -m 0755 $(BIN_DIR)/twofold-enrolld $(DESTDIR)$(SBINDIR)/twofold-enrolld
	$(INSTALL) -m 0755 $(BIN_DIR)/twofold-verifyd $(DESTDIR)$(SBINDIR)/twofold-verifyd
	$(INSTALL) -m 0644 $(BIN_DIR)/libpam_twofold.so $(DESTDIR)$(PAMDIR)/pam_twofold.so
	$(INSTALL) -m 0644 $(ASSET_DIR)/man/*.1 $(DESTDIR)$(MANDIR)/man1/
	$(INSTALL) -m 0644 $(ASSET_DIR)/man/twofold-enrolld.8 $(ASSET_DIR)/man/twofold-verifyd.8 $(DESTDIR)$(MANDIR)/man8/
	$(INSTALL) -m 0644 $(ASSET_DIR)/completions/twofold.bash $(DESTDIR)$(DATADIR)/bash-completion/completions/twofold
	$(INSTALL) -m 0644 $(ASSET_DIR)/completions/_twofold $(DESTDIR)$(DATADIR)/zsh/vendor-completions/_twofold
	$(INSTALL) -m 0644 $(ASSET_DIR)/completions/twofold.fish $(DESTDIR)$(DATADIR)/fish/vendor_completions.d/twofold.fish
	$(INSTALL) -m 0644 packaging/dbus/org.twofold.Enroll1.conf $(DESTDIR)$(DATADIR)/dbus-1/system.d/
	sed 's|/usr/sbin/twofold-enrolld|$(SBINDIR)/twofold-enrolld|' packaging/dbus/org.twofold.Enroll1.service > $(DESTDIR)$(DATADIR)/dbus-1/system-services/org.twofold.Enroll1.service
	chmod 0644 $(DESTDIR)$(DATADIR)/dbus-1/system-services/org.twofold.Enroll1.service
	sed 's|/usr/sbin/twofold-enrolld|$(SBINDIR)/twofold-enrolld|' packaging/systemd/twofold-enrolld.service > $(DESTDIR)$(UNITDIR)/twofold-enrolld.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/twofold-enrolld.service
	sed 's|/usr/sbin/twofold-verifyd|$(SBINDIR)/twofold-verifyd|' packaging/systemd/twofold-verifyd.service > $(DESTDIR)$(UNITDIR)/twofold-verifyd.service
	$(INSTALL) -m 0644 packaging/systemd/twofold-verifyd.socket $(DESTDIR)$(UNITDIR)/twofold-verifyd.socket
	chmod 0644 $(DESTDIR)$(UNITDIR)/twofold-verifyd.service
	$(INSTALL) -m 0644 packaging/pam-configs/twofold $(DESTDIR)$(DATADIR)/pam-configs/twofold
	$(INSTALL) -m 0644 $(COCKPIT_FILES) $(DESTDIR)$(DATADIR)/cockpit/twofold/
	@# polkit: the actions, and the rule granting manage-others to twofold-admin. rules.d is
	@# 0700 polkitd:root as Debian's polkitd makes it (its postinst), so that only polkitd reads
	@# the rules: created without changing the owner of an existing one, then given to polkitd
	@# when that user exists.
	$(INSTALL) -d -m 0755 $(DESTDIR)$(DATADIR)/polkit-1 $(DESTDIR)$(DATADIR)/polkit-1/actions
	install -d -m 0700 $(DESTDIR)$(DATADIR)/polkit-1/rules.d
	if [ "$$(id -u)" -eq 0 ] && getent passwd polkitd >/dev/null; then chown polkitd:root $(DESTDIR)$(DATADIR)/polkit-1/rules.d; fi
	$(INSTALL) -m 0644 packaging/polkit/org.twofold.Enroll1.policy $(DESTDIR)$(DATADIR)/polkit-1/actions/org.twofold.Enroll1.policy
	$(INSTALL) -m 0644 packaging/polkit/50-twofold.rules $(DESTDIR)$(DATADIR)/polkit-1/rules.d/50-twofold.rules
	@# The policy is the admin's: never overwritten.
	[ -e $(DESTDIR)$(SYSCONFDIR)/twofold/policy.toml ] || \
	  $(INSTALL) -m 0644 packaging/policy.toml $(DESTDIR)$(SYSCONFDIR)/twofold/policy.toml

# Benchmarks (root): figures printed and written to bench/results.md, never asserted.
# slapd + ldap-utils: the LDAP part starts a private slapd (tests/src/slapd.rs) and removes it.
BENCH_PACKAGES := libpam-google-authenticator libnss-wrapper libpam0g-dev dbus-daemon gcc passwd strace binutils \
  slapd ldap-utils
bench: build
	@$(MAKE) --no-print-directory apt PACKAGES="$(BENCH_PACKAGES)"
	gcc -O2 -Wall -Wextra -o target/pam_bench bench/pam_bench.c -lpam
	gcc -O2 -Wall -Wextra -o target/dl_bench bench/dl_bench.c -lpam
	$(CARGO) build --release -p twofold-bench
	target/release/twofold-bench --target target/release --pam-bench target/pam_bench --dl-bench target/dl_bench --out bench/results.md
	@# The admin console at 100,000 users, in a real browser (bench/console-results.md).
	@$(MAKE) --no-print-directory apt PACKAGES="$(APT_PACKAGES)"
	TWOFOLD_CONSOLE_BENCH_OUT=$(abspath bench/console-results.md) bench/with-devlog.sh \
	  $(CARGO) test --release -p twofold-system-tests --test console -- --exact the_console_opens_fast_with_100000_users --nocapture

# The functions a login runs, for the linker to place together (pam_module/build.rs): after
# changes to the login path or a new toolchain (root: accounts, a PAM service file).
hot-symbols: build
	@$(MAKE) --no-print-directory apt PACKAGES="$(BENCH_PACKAGES) valgrind"
	gcc -O2 -Wall -Wextra -o target/pam_bench bench/pam_bench.c -lpam
	gcc -O2 -Wall -Wextra -o target/dl_bench bench/dl_bench.c -lpam
	$(CARGO) build --release -p twofold-bench
	target/release/twofold-bench --target target/release --pam-bench target/pam_bench --dl-bench target/dl_bench --hot-symbols pam_module/hot-symbols.txt
	$(CARGO) build --workspace --release

# Abuse, minutes long, not in CI (root): concurrency, daemon kills, full disk, randomized inputs.
stress: build
	@$(MAKE) --no-print-directory apt PACKAGES="$(BENCH_PACKAGES) pamtester"
	$(CARGO) build --release -p twofold-bench
	target/release/twofold-stress --target target/release --out bench/stress-results.md

# The newcomer's sandbox (packaging/demo.sh); DEMO_BIN_DIR=dir uses binaries built already.
DEMO_BIN_DIR ?=
demo: deps
	@if [ -z "$(DEMO_BIN_DIR)" ]; then $(MAKE) --no-print-directory build; fi
	@BIN_DIR=$(or $(DEMO_BIN_DIR),target/release) bash packaging/demo.sh

# The admin console's sandbox (packaging/console-demo.sh): private bus + daemon, cockpit-ws on
# 127.0.0.1:9090 (CONSOLE_PORT) in a mount namespace, an admin and a user account.
console-demo: deps
	@if [ -z "$(DEMO_BIN_DIR)" ]; then $(MAKE) --no-print-directory build; fi
	@BIN_DIR=$(or $(DEMO_BIN_DIR),target/release) bash packaging/console-demo.sh

# The fleet's sandbox (packaging/fleet-demo.sh): a private slapd (otp overlay, twofold's schema)
# and two sshd "hosts" on 127.0.0.1 (FLEET_PORT_A, FLEET_PORT_B; slapd on FLEET_LDAP_PORT), each
# with its own state directory, PAM service, bus and daemon, one policy with backend = "ldap".
fleet-demo: deps
	@if [ -z "$(DEMO_BIN_DIR)" ]; then $(MAKE) --no-print-directory build; fi
	@BIN_DIR=$(or $(DEMO_BIN_DIR),target/release) bash packaging/fleet-demo.sh

# Removes what install-files installed, except the policy and the state (kept, as a package
# remove keeps them). Disable the PAM profile first if pam-auth-update enabled it.
uninstall:
	rm -f $(DESTDIR)$(BINDIR)/twofold $(DESTDIR)$(SBINDIR)/twofold-enrolld $(DESTDIR)$(SBINDIR)/twofold-verifyd $(DESTDIR)$(PAMDIR)/pam_twofold.so
	rm -f $(DESTDIR)$(MANDIR)/man1/twofold.1 $(DESTDIR)$(MANDIR)/man1/twofold-*.1 $(DESTDIR)$(MANDIR)/man8/twofold-enrolld.8 $(DESTDIR)$(MANDIR)/man8/twofold-verifyd.8
	rm -f $(DESTDIR)$(DATADIR)/bash-completion/completions/twofold $(DESTDIR)$(DATADIR)/zsh/vendor-completions/_twofold \
	  $(DESTDIR)$(DATADIR)/fish/vendor_completions.d/twofold.fish
	rm -f $(DESTDIR)$(DATADIR)/dbus-1/system.d/org.twofold.Enroll1.conf \
	  $(DESTDIR)$(DATADIR)/dbus-1/system-services/org.twofold.Enroll1.service \
	  $(DESTDIR)$(UNITDIR)/twofold-enrolld.service $(DESTDIR)$(UNITDIR)/twofold-verifyd.service \
	  $(DESTDIR)$(UNITDIR)/twofold-verifyd.socket $(DESTDIR)$(DATADIR)/pam-configs/twofold
	rm -rf $(DESTDIR)$(DATADIR)/cockpit/twofold
	rm -f $(DESTDIR)$(DATADIR)/polkit-1/actions/org.twofold.Enroll1.policy \
	  $(DESTDIR)$(DATADIR)/polkit-1/rules.d/50-twofold.rules

# The Debian package, from debian/ (debhelper): dpkg-buildpackage -us -uc in a copy of the
# source tree under DEB_OUT, so that what it writes beside the tree it builds lands in DEB_OUT
# and nowhere outside the workspace: twofold_VERSION_ARCH.deb, twofold-dbgsym_VERSION_ARCH.deb
# (the debug symbols), the source package (.dsc + .tar.xz), .buildinfo and .changes. The copy
# leaves out what debian/source/options leaves out of the source package. `make deb` then runs
# lintian on them all and fails on any error or warning (the packaging test checks the same).
# `make deb` builds from source (cargo runs in debian/rules, with the toolchain README.md
# installs, into target/deb-cargo); `make deb-files` packages binaries built already (BIN_DIR,
# ASSET_DIR: the packaging test packages its debug build).
DEB_VERSION = $(shell dpkg-parsechangelog -S Version)
DEB_OUT ?= target/debian
DEB_SRC = $(DEB_OUT)/twofold-$(DEB_VERSION)
# What building the package needs beyond the test suite's packages (fakeroot is not needed:
# Rules-Requires-Root: no).
DEB_PACKAGES := debhelper dpkg-dev lintian libpam0g-dev pkg-config

deb:
	@$(MAKE) --no-print-directory apt PACKAGES="$(DEB_PACKAGES)"
	$(MAKE) --no-print-directory deb-build DEB_ENV="CARGO=$(CARGO) CARGO_TARGET_DIR=$(abspath target/deb-cargo)"
	lintian --fail-on error,warning $(DEB_OUT)/twofold_$(DEB_VERSION)_$$(dpkg --print-architecture).changes

deb-files:
	$(MAKE) --no-print-directory deb-build \
	  DEB_ENV="TWOFOLD_BIN_DIR=$(abspath $(BIN_DIR)) TWOFOLD_ASSET_DIR=$(abspath $(ASSET_DIR))"

deb-build:
	rm -rf $(DEB_SRC)
	rm -f $(DEB_OUT)/twofold_* $(DEB_OUT)/twofold-dbgsym_*
	mkdir -p $(DEB_SRC)
	tar -c --exclude-vcs --exclude=./target --exclude=./tmp --exclude=__pycache__ . | tar -x -C $(DEB_SRC)
	@# Without this make's MAKEFLAGS: its command-line variables (BIN_DIR=…) would override
	@# debian/rules' own.
	cd $(DEB_SRC) && env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL $(DEB_ENV) dpkg-buildpackage -us -uc

deps:
	@$(MAKE) --no-print-directory apt PACKAGES="$(APT_PACKAGES)"

# Installs the Debian packages in PACKAGES that are missing. Noninteractive (through sudo too,
# which would drop the variable): debconf's defaults answer slapd's and nslcd's questions, and
# libnss-ldapd's default selects no service, so /etc/nsswitch.conf is left alone. Without
# recommends: no nscd, and no libpam-ldapd (whose pam-auth-update profile would put pam_ldap in
# the PAM stack). The postinsts of slapd and nslcd start and enable system daemons (Debian's
# default directory, nslcd on ldap://127.0.0.1/); the tests run their own, so those installed
# here are stopped and disabled again.
apt:
	@missing=""; \
	for p in $(PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing && \
	  for d in slapd nslcd; do \
	    case " $$missing " in *" $$d "*) \
	      $(SUDO) invoke-rc.d $$d stop >/dev/null 2>&1 || true; \
	      $(SUDO) update-rc.d $$d disable >/dev/null 2>&1 || true;; \
	    esac; \
	  done; \
	fi

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

doc:
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps --quiet

unit:
	$(CARGO) test --workspace

test: deps fmt-check clippy doc unit
