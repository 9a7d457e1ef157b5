#!/usr/bin/env bash
# Vendor Swagger UI's built files into the package, from the npm registry, so /docs works with no
# internet in the viewer's browser (no CDN). Run it to change the version; the files are committed.
#
#   bash scripts/vendor_swagger_ui.sh            # the version below
#   SWAGGER_UI_VERSION=5.36.0 bash scripts/vendor_swagger_ui.sh
#
# The tarball is checked against the registry's sha512 integrity before anything is copied.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=${SWAGGER_UI_VERSION:-5.35.0}
DEST=actwatch/service/static/vendor/swagger-ui
URL="https://registry.npmjs.org/swagger-ui-dist/-/swagger-ui-dist-${VERSION}.tgz"
FILES=(swagger-ui-bundle.js swagger-ui.css oauth2-redirect.js favicon-32x32.png LICENSE NOTICE)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
integrity=$(curl -fsS "https://registry.npmjs.org/swagger-ui-dist/${VERSION}" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["dist"]["integrity"])')
curl -fsS -o "$work/pkg.tgz" "$URL"
actual="sha512-$(openssl dgst -sha512 -binary "$work/pkg.tgz" | base64 -w0)"
if [ "$actual" != "$integrity" ]; then
    echo "error: $URL does not match the registry's integrity $integrity; nothing was changed" >&2
    exit 2
fi
tar -xzf "$work/pkg.tgz" -C "$work"
rm -rf "$DEST"
mkdir -p "$DEST"
for f in "${FILES[@]}"; do
    cp "$work/package/$f" "$DEST/$f"
done
# The stylesheet's last line names its source map, which is not vendored (it would 404 in devtools).
sed -i '/^\/\*# sourceMappingURL=/d' "$DEST/swagger-ui.css"
printf 'swagger-ui-dist %s\n%s\n%s\n' "$VERSION" "$URL" "$integrity" >"$DEST/VERSION"
echo "vendored swagger-ui-dist $VERSION into $DEST"
