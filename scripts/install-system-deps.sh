#!/usr/bin/env bash
# Installs the Debian packages Docket needs, only when something is missing (apt-get is slow).
set -euo pipefail
need=()
command -v tesseract >/dev/null || need+=(tesseract-ocr)
for lang in eng jpn osd; do
  [ -e "/usr/share/tesseract-ocr/5/tessdata/$lang.traineddata" ] || need+=("tesseract-ocr-$lang")
done
command -v psql >/dev/null || need+=(postgresql-client)
command -v chromium >/dev/null || need+=(chromium)
[ ${#need[@]} -eq 0 ] && exit 0
echo "Installing Debian packages: ${need[*]}"
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
