#!/usr/bin/env bash
# Build the customers-mngr binary with PyInstaller: `packaging/build.sh [PYTHON]`.
#
# Writes daemon/_commit.txt first (from $COMMIT if set — the image build passes it, having no
# .git — else from git), so `customers-mngr version` names the commit it was built from.
# Layout: $CM_PYI_LAYOUT (onedir by default; see packaging/README.md for the measurement).
# Output: dist/customers-mngr, the executable to run. One-dir (the default): the bundle is the
# folder dist/customers-mngr-bundle/ (executable + _internal/; copy the whole folder) and
# dist/customers-mngr is a relative symlink to its executable. One-file: the file itself.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
python="${1:-python3}"
cd "$root"

commit="${COMMIT:-}"
if [[ -z "$commit" ]] && git -C "$root" rev-parse --git-dir >/dev/null 2>&1; then
    commit="$(git -C "$root" rev-parse --short=12 HEAD)"
    if [[ -n "$(git -C "$root" status --porcelain --untracked-files=no -- daemon packaging pyproject.toml)" ]]; then
        commit="${commit}-dirty"
    fi
fi
printf '%s\n' "${commit:-unknown}" > daemon/_commit.txt

layout="${CM_PYI_LAYOUT:-onedir}"
rm -rf dist/customers-mngr dist/customers-mngr-bundle
CM_PYI_LAYOUT="$layout" "$python" -m PyInstaller --noconfirm --log-level WARN \
    --distpath dist --workpath "build/pyinstaller-$layout" packaging/customers-mngr.spec
if [[ "$layout" == onedir ]]; then
    ln -s customers-mngr-bundle/customers-mngr dist/customers-mngr
fi
dist/customers-mngr version
