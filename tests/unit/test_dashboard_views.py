"""The dashboard's views on a faust web server: redirect, files, CSP, nothing else served."""

from __future__ import annotations

import aiohttp
import faust
from aiohttp import web

from monitor.dashboard import views


async def _get_all(paths: list[str]) -> dict[str, tuple[int, dict[str, str], bytes]]:
    app = faust.App("dashboard-views-test", broker="memory://", store="memory://",
                    web_enabled=True, autodiscover=False)
    views.register(app)
    app.web.init_server()  # faust's own "/" index is added here, after ours
    runner = web.AppRunner(app.web.web_app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    out = {}
    try:
        async with aiohttp.ClientSession() as session:
            for path in paths:
                async with session.get(f"http://127.0.0.1:{port}{path}",
                                       allow_redirects=False) as response:
                    out[path] = (response.status, dict(response.headers), await response.read())
    finally:
        await runner.cleanup()
    return out


async def test_root_redirects_and_files_carry_a_strict_csp() -> None:
    got = await _get_all(["/", "/ui/", "/ui/app.js", "/ui/app.css", "/ui/graph.js",
                          "/ui/missing.js", "/ui/%2e%2e/views.py", "/ui/views.py"])
    assert got["/"][0] == 302 and got["/"][1]["Location"] == "/ui/"
    status, headers, body = got["/ui/"]
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert b'<script type="module" src="/ui/app.js">' in body
    assert b"http" not in body.replace(b"http-equiv", b"")  # no outside origin
    for path in ("/ui/", "/ui/app.js", "/ui/app.css"):
        csp = got[path][1]["Content-Security-Policy"]
        assert csp.startswith("default-src 'self'") and "unsafe" not in csp
        assert got[path][1]["X-Content-Type-Options"] == "nosniff"
    assert got["/ui/app.js"][1]["Content-Type"].startswith("text/javascript")
    assert got["/ui/app.css"][1]["Content-Type"].startswith("text/css")
    for path in ("/ui/missing.js", "/ui/%2e%2e/views.py", "/ui/views.py"):
        assert got[path][0] == 404, path


def test_scripts_never_write_markup() -> None:
    for name, (body, _) in views.static_files().items():
        text = body.decode()
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert sink not in text, f"{name} uses {sink}"
