#!/usr/bin/env bash
# The browser tests drive Debian's Chromium (real parts, no mocks). Install it when missing:
# a fresh machine of this project's kind has apt and root, and nothing else to fetch it from.
set -euo pipefail
command -v chromium >/dev/null 2>&1 && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "ensure-chromium: chromium is missing; install Debian's chromium package (apt-get install chromium)" >&2
	exit 1
fi
echo "ensure-chromium: installing Debian's chromium package" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
