#!/usr/bin/env bash
# Installs Debian packages without starting their system services (Ward's
# scripts and tests run their own PostgreSQL and nginx instances, on ports
# of their choosing). Usage: deploy/apt-install.sh PACKAGE...
set -euo pipefail
(($#)) || { echo "usage: $0 PACKAGE..." >&2; exit 2; }
sudo=()
if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || { echo "installing $* needs root or sudo" >&2; exit 1; }
    sudo=(sudo)
fi
echo "Installing Debian packages: $* (apt-get)" >&2
policy=/usr/sbin/policy-rc.d
added_policy=false
if [[ ! -e $policy ]]; then
    # Exit status 101 tells invoke-rc.d not to start services.
    printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
    "${sudo[@]}" chmod 755 "$policy"
    added_policy=true
fi
status=0
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q &&
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" || status=$?
if $added_policy; then "${sudo[@]}" rm -f "$policy"; fi
exit "$status"
