# twofold: the newcomer's commands.
#   make test   install the system packages the tests need (apt-get), then fmt, clippy, docs, tests
#   make build  release build of the workspace

# System packages the test suite uses: oathtool (independent TOTP codes), the PAM wrappers and
# pamtester (real libpam in tests), libpam0g-dev (links pam_twofold.so), passwd (useradd in tests),
# openssh-server + python3-paramiko (a real sshd on 127.0.0.1 and a keyboard-interactive client),
# dbus-daemon (a private bus for twofold-enrolld), zbar-tools (decodes the QR code of `twofold enroll`).
APT_PACKAGES := oathtool libpam-wrapper libnss-wrapper pamtester libpam0g-dev passwd util-linux \
  dbus-daemon dbus-bin zbar-tools \
  openssh-server openssh-client python3-paramiko
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
CARGO ?= cargo

.PHONY: all build test deps fmt-check clippy doc unit

all: build

build:
	$(CARGO) build --workspace --release

deps:
	@missing=""; \
	for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
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
