# The two commands of the README:
#   make demo   install, then run one cycle of the bot on its embedded default (local Maildir, no servers)
#               and write the day's 管理台帳 share (CSV + workbook), the HTML digest and the held notes it leaves
#   make test   install (Dovecot from Debian packages, the Python dependencies), then run every test
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test install servers

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

# Real servers for the tests: Dovecot from Debian packages (the SMTP server is aiosmtpd, a test dependency);
# IPA and DejaVu fonts for the second producer (fpdf2) of the sample forms; the sqlite3 command line, which
# stores the rows of the UNIS extract when installed (the tests import each extract with and without it).
servers:
	@[ -x /usr/sbin/dovecot ] && [ -e /usr/share/fonts/opentype/ipafont-gothic/ipag.ttf ] && [ -x /usr/bin/sqlite3 ] || { \
	  $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	  dovecot-imapd fonts-ipafont-gothic fonts-dejavu-core sqlite3 >/dev/null; }

demo: install
	$(VENV)/bin/mailbot poll
	$(VENV)/bin/mailbot ledger
	$(VENV)/bin/mailbot digest --html mailbot-demo/digest.html
	$(VENV)/bin/mailbot held --save mailbot-demo/held

test: install servers
	$(PY) -m pytest -q
