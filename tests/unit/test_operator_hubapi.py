"""How the operator reads the hub's answers: JSON errors are the hub's (final), anything else
is the proxy answering while the hub is away (retried)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from hub.operator.hubapi import HubApi, HubRefused, HubUnavailable

ANSWERS: dict[str, tuple[int, str, str]] = {
    "/hub/api/users/nobody": (404, "application/json", json.dumps({"message": "Not Found"})),
    "/hub/api/users/starting": (404, "text/html", "<div class='error'>404</div>"),
    "/hub/api/users/bad/servers/x": (400, "application/json", '{"message": "bad ref"}'),
}


class Handler(BaseHTTPRequestHandler):
    def answer(self) -> None:
        status, kind, body = ANSWERS.get(self.path.split("?")[0], (503, "text/html", "down"))
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.end_headers()
        self.wfile.write(body.encode())

    do_GET = do_POST = answer

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture
def api_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hub/api"
    server.shutdown()


def test_json_errors_are_the_hubs_and_pages_are_the_proxys(api_url: str) -> None:
    async def run() -> None:
        hub = HubApi(api_url, "token")
        try:
            assert await hub.user("nobody") is None  # the hub: no such user
            with pytest.raises(HubUnavailable, match="from the proxy"):
                await hub.user("starting")  # the proxy before the hub is back
            with pytest.raises(HubRefused, match="bad ref"):
                await hub.start("bad", "x", {"repo": "/r"})
            with pytest.raises(HubUnavailable, match="503"):
                await hub.user("elsewhere")
        finally:
            await hub.close()

    asyncio.run(run())
