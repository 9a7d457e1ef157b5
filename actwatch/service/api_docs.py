"""The API's interactive documentation at ``/docs``, served entirely from the package.

FastAPI's own ``/docs`` and ``/redoc`` pages load Swagger UI and ReDoc from a CDN in the viewer's
browser, so they are blank on a site without internet. Here ``/docs`` loads the Swagger UI files
vendored under ``static/vendor/swagger-ui/`` (``scripts/vendor_swagger_ui.sh``: from the npm registry,
integrity checked, licence and version beside them) and starts it from a script file of its own, so
the page keeps a strict Content-Security-Policy (no inline script). ReDoc is not served: one
interactive reference is enough, and it would be a second 2 MB bundle to vendor.

Example:
    >>> from fastapi import FastAPI
    >>> from fastapi.testclient import TestClient
    >>> app = FastAPI(docs_url=None, redoc_url=None)
    >>> app.include_router(router())
    >>> page = TestClient(app).get("/docs")
    >>> "/static/vendor/swagger-ui/swagger-ui-bundle.js" in page.text, "cdn" in page.text
    (True, False)
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

DOCS_PATH = "/docs"
OAUTH2_REDIRECT_PATH = "/docs/oauth2-redirect"
SWAGGER_DIR = "/static/vendor/swagger-ui"

# Swagger UI sets element styles from script (allowed by style-src 'self') and shows its logo as a data: image.
DOCS_CSP = (
    "default-src 'self'; img-src 'self' data:; connect-src 'self'; style-src 'self'; script-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)

_DOCS_PAGE = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>actwatch API</title>
<link rel="icon" type="image/png" href="{SWAGGER_DIR}/favicon-32x32.png">
<link rel="stylesheet" href="{SWAGGER_DIR}/swagger-ui.css">
</head>
<body>
<main id="swagger-ui" data-openapi-url="/openapi.json" data-oauth2-redirect-url="{OAUTH2_REDIRECT_PATH}"></main>
<script src="{SWAGGER_DIR}/swagger-ui-bundle.js"></script>
<script src="/static/docs/swagger-init.js"></script>
</body>
</html>
"""

_OAUTH2_REDIRECT_PAGE = f"""<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>actwatch API: sign-in</title></head>
<body>
<script src="{SWAGGER_DIR}/oauth2-redirect.js"></script>
</body>
</html>
"""


def _page(html: str) -> HTMLResponse:
    return HTMLResponse(html, headers={"Content-Security-Policy": DOCS_CSP, "Cache-Control": "no-cache"})


def router() -> APIRouter:
    """``/docs`` and its OAuth2 redirect page (public: the schema is not secret, the pages hold no data)."""
    api = APIRouter(include_in_schema=False)

    @api.get(DOCS_PATH)
    def swagger_ui() -> HTMLResponse:
        return _page(_DOCS_PAGE)

    @api.get(OAUTH2_REDIRECT_PATH)
    def swagger_ui_oauth2_redirect() -> HTMLResponse:
        return _page(_OAUTH2_REDIRECT_PAGE)

    return api
