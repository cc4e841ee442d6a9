#!/usr/bin/env bash
# System packages the tests and the local cluster need (Debian):
#   prometheus + promtool    the forecaster's Prometheus source tests, `promtool test rules`
#   containerd, runc, containernetworking-plugins, iptables, conntrack, socat
#                            the local cluster's real nodes (kubelet and kube-proxy are built from Go)
#   buildah, debootstrap, busybox-static
#                            the images, built from the Dockerfile without a Docker daemon
# Idempotent; does nothing when they are already there.
set -euo pipefail
need=()
have() { command -v "$1" >/dev/null 2>&1; }
have promtool || need+=(prometheus)
have prometheus || need+=(prometheus)
have containerd || need+=(containerd)
have runc || need+=(runc)
[ -x /usr/lib/cni/bridge ] || [ -x /opt/cni/bin/bridge ] || need+=(containernetworking-plugins)
have iptables || need+=(iptables)
have conntrack || need+=(conntrack)
have socat || need+=(socat)
have buildah || need+=(buildah)
have debootstrap || need+=(debootstrap)
[ -x /bin/busybox ] || need+=(busybox-static)
if [ ${#need[@]} -eq 0 ]; then
  echo "==> system packages present (prometheus, containerd, runc, CNI plugins, iptables, buildah, debootstrap)"
  exit 0
fi
mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
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
