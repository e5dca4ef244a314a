"""Serve the dashboard: ``/`` redirects to ``/ui/``, ``/ui/<file>`` serves its static files.

The pages are plain ES modules with no build step and no outside origin: every response
carries a strict Content-Security-Policy (``default-src 'self'``), so neither injected markup
nor a third-party script could run even if an alert carried hostile text. The files are read
from the package once, at registration; the set of names is fixed, so a request can never
reach another file.
"""

from __future__ import annotations

from importlib import resources
from typing import Final

import faust
from faust.web import Request, Response, View

CONTENT_SECURITY_POLICY: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'self'"
)
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
CONTENT_TYPES: Final = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}


def static_files() -> dict[str, tuple[bytes, str]]:
    """Every dashboard file by name, with its content type (read from the package)."""
    folder = resources.files("monitor.dashboard") / "static"
    files: dict[str, tuple[bytes, str]] = {}
    for item in folder.iterdir():
        suffix = "." + item.name.rsplit(".", 1)[-1] if "." in item.name else ""
        if item.is_file() and suffix in CONTENT_TYPES:
            files[item.name] = (item.read_bytes(), CONTENT_TYPES[suffix])
    if "index.html" not in files:
        raise RuntimeError("monitor/dashboard/static/index.html is missing from the package")
    return files


def register(app: faust.App) -> None:
    """Define the dashboard's pages on ``app`` (register before any other ``/`` route)."""
    files = static_files()

    def serve(view: View, name: str) -> Response:
        found = files.get(name)
        if found is None:
            return view.json({"error": f"no dashboard file named {name!r}"}, status=404,
                             headers=dict(SECURITY_HEADERS))
        body, content_type = found
        # aiohttp refuses a charset inside ``content_type=``: pass the full header instead.
        return view.bytes(body, headers={**SECURITY_HEADERS, "Content-Type": content_type})

    # "/" first: faust's own index page is added later for the same path and never matches.
    @app.page("/")
    class DashboardRoot(View):
        """Send a browser to the dashboard."""

        async def get(self, request: Request) -> Response:
            """Redirect to ``/ui/``."""
            return self.text("", status=302, headers={"Location": "/ui/", **SECURITY_HEADERS})

    @app.page("/ui/")
    class DashboardIndex(View):
        """The dashboard's single page."""

        async def get(self, request: Request) -> Response:
            """Return ``index.html``."""
            return serve(self, "index.html")

    @app.page("/ui/{name}")
    class DashboardFile(View):
        """One of the dashboard's scripts or style sheets."""

        async def get(self, request: Request, name: str) -> Response:
            """Return the file called ``name``."""
            return serve(self, name)
