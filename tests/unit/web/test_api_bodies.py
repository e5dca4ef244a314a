"""Outside input to the write endpoints: any JSON body is either accepted or a named 400."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.web.http import ApiError
from monitor.web.index import AlertIndex
from monitor.web.query import AlertFilter
from monitor.web.sse import stream
from monitor.web.views_alerts import _note
from tests.unit.web.builders import make_alert

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12)


@given(st.one_of(json_values, st.fixed_dictionaries({"note": json_values}),
                 st.fixed_dictionaries({"note": st.text(max_size=2100)})))
@settings(max_examples=300)
def test_any_action_body_is_a_note_or_a_named_error(body: object) -> None:
    try:
        note = _note(body)
    except ApiError as exc:
        assert exc.status == 400 and exc.message.startswith("body")
    else:
        assert isinstance(note, str) and len(note) <= 2000


async def test_closing_the_index_ends_open_streams() -> None:
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    index = AlertIndex()

    async def handler(request: web.Request) -> web.StreamResponse:
        return await stream(request, index, None, AlertFilter())

    app = web.Application()
    app.router.add_get("/s", handler)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        resp = await client.get("/s")
        await asyncio.wait_for(resp.content.readuntil(b"connected"), 5)
        index.apply_alert(make_alert(1), 0, 0)
        index.close()
        rest = await asyncio.wait_for(resp.content.read(), 5)  # ends: EOF after the close
        assert b"event: alert" in rest
