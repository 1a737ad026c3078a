#!/usr/bin/env bash
# npm run setup:browser: install Debian's chromium package, which the browser tests drive
# (real parts, no mocks). npm test never installs anything; without a Chromium it skips those
# tests and says so. Needs apt and root (or sudo).
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
	echo "setup:browser: $(command -v chromium) is there already"
	exit 0
fi
if [ "$(id -u)" = 0 ]; then
	sudo=()
elif command -v sudo >/dev/null 2>&1; then
	sudo=(sudo)
else
	echo "setup:browser: run as root (or with sudo): apt-get install chromium" >&2
	exit 1
fi
echo "setup:browser: installing Debian's chromium package (about 290 MB)" >&2
"${sudo[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends chromium >/dev/null
echo "setup:browser: $(command -v chromium)"
