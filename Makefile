# Builds and installs vm-container like any other system tool:
#
#   make                      cargo build --release (as the user with Rust)
#   make install              the binary, its man pages, bash/zsh/fish
#                             completions, the systemd unit and the Xen
#                             block hotplug script
#   make install PREFIX=/usr DESTDIR=/tmp/pkg   (packaging)
#   make uninstall
#
# `install` builds only when BIN is missing: root needs no Rust of its own.
#
# `install-files` installs an already built BIN without invoking cargo
# (what a package build or a test does).

PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR ?= $(PREFIX)/share/zsh/site-functions
FISHCOMPDIR ?= $(PREFIX)/share/fish/vendor_completions.d
# systemd reads units the administrator installs from /etc/systemd/system
# and packaged ones from $(PREFIX)/lib/systemd/system; Xen runs hotplug
# scripts from /etc/xen/scripts only
SYSTEMDUNITDIR ?= /etc/systemd/system
XENSCRIPTDIR ?= /etc/xen/scripts
CARGO ?= cargo
BIN ?= target/release/vm-container

INSTALL ?= install

.PHONY: all build install install-files uninstall

all: build

build:
	$(CARGO) build --release --locked

$(BIN):
	$(CARGO) build --release --locked

install: $(BIN)
	$(MAKE) install-files

install-files:
	$(INSTALL) -D -m 0755 $(BIN) $(DESTDIR)$(BINDIR)/vm-container
# the man pages and completions are generated from the binary's own
# command line, so they always match it
	set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	$(BIN) generate man "$$tmp"; \
	for sh in bash zsh fish; do $(BIN) generate completions $$sh "$$tmp"; done; \
	for page in "$$tmp"/*.1; do \
	    $(INSTALL) -D -m 0644 "$$page" $(DESTDIR)$(MANDIR)/man1/$${page##*/}; \
	done; \
	$(INSTALL) -D -m 0644 "$$tmp/vm-container" $(DESTDIR)$(BASHCOMPDIR)/vm-container; \
	$(INSTALL) -D -m 0644 "$$tmp/_vm-container" $(DESTDIR)$(ZSHCOMPDIR)/_vm-container; \
	$(INSTALL) -D -m 0644 "$$tmp/vm-container.fish" $(DESTDIR)$(FISHCOMPDIR)/vm-container.fish
# both hooks name the binary by its installed path
	mkdir -p $(DESTDIR)$(SYSTEMDUNITDIR) $(DESTDIR)$(XENSCRIPTDIR)
	sed 's|/usr/local/bin/vm-container|$(BINDIR)/vm-container|g' \
	    examples/hooks/vm-container@.service > $(DESTDIR)$(SYSTEMDUNITDIR)/vm-container@.service
	chmod 0644 $(DESTDIR)$(SYSTEMDUNITDIR)/vm-container@.service
	sed 's|/usr/local/bin/vm-container|$(BINDIR)/vm-container|g' \
	    examples/hooks/block-vmcontainer > $(DESTDIR)$(XENSCRIPTDIR)/block-vmcontainer
	chmod 0755 $(DESTDIR)$(XENSCRIPTDIR)/block-vmcontainer

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/vm-container \
	    $(DESTDIR)$(MANDIR)/man1/vm-container.1 \
	    $(DESTDIR)$(MANDIR)/man1/vm-container-*.1 \
	    $(DESTDIR)$(BASHCOMPDIR)/vm-container \
	    $(DESTDIR)$(ZSHCOMPDIR)/_vm-container \
	    $(DESTDIR)$(FISHCOMPDIR)/vm-container.fish \
	    $(DESTDIR)$(SYSTEMDUNITDIR)/vm-container@.service \
	    $(DESTDIR)$(XENSCRIPTDIR)/block-vmcontainer
