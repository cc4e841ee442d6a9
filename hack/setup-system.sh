#!/usr/bin/env bash
# System packages the tests need (Debian): prometheus + promtool (forecaster's Prometheus source
# tests, `promtool test rules`). Idempotent; does nothing when they are already there.
set -euo pipefail
need=()
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
if [ ${#need[@]} -eq 0 ]; then
  echo "==> system packages present (prometheus, promtool)"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "hack/setup-system.sh: need root to install: ${need[*]} (or install them yourself)" >&2
  exit 1
fi
echo "==> apt-get install ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# policy-rc.d keeps the package from starting a system Prometheus service; tests start their own.
# An existing policy-rc.d (Debian/Ubuntu container images ship one) is kept and restored.
if [ -e /usr/sbin/policy-rc.d ]; then
  cp -p /usr/sbin/policy-rc.d /usr/sbin/policy-rc.d.outrider-saved
  trap 'mv -f /usr/sbin/policy-rc.d.outrider-saved /usr/sbin/policy-rc.d' EXIT
else
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
chmod +x /usr/sbin/policy-rc.d
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
echo "==> installed: $(promtool --version 2>&1 | head -1)"
