#!/usr/bin/env bash
# Install the system packages the plugin needs on Debian 12 (bookworm):
# QGIS 3.40 LTR from bookworm-backports (Debian main only has 3.22), Debian's
# rasterio (same GDAL as QGIS), and the Qt offscreen platform.
# Idempotent: returns at once when everything is already there.
set -euo pipefail

need_pkgs=(qgis python3-qgis qgis-providers python3-rasterio python3-venv python3-pip xvfb)

have_all() {
    command -v qgis_process >/dev/null 2>&1 || return 1
    /usr/bin/python3 -c "import qgis.core, rasterio" >/dev/null 2>&1 || return 1
    local v
    v=$(dpkg-query -W -f='${Version}' qgis 2>/dev/null || true)
    [[ "$v" == 3.4* ]] || return 1
    return 0
}

if have_all; then
    echo "setup_system: QGIS $(dpkg-query -W -f='${Version}' qgis) and rasterio already installed"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive

src=/etc/apt/sources.list.d/bookworm-backports.sources
if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
    echo "setup_system: adding bookworm-backports apt source"
    $SUDO tee "$src" >/dev/null <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
fi

$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends -t bookworm-backports \
    qgis python3-qgis qgis-providers
$SUDO apt-get install -y -q --no-install-recommends \
    python3-rasterio python3-venv python3-pip xvfb
echo "setup_system: installed QGIS $(dpkg-query -W -f='${Version}' qgis)"
