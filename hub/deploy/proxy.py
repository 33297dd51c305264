"""Pass a request on to a model server through its unix socket, and its answer back."""

from __future__ import annotations

import httpx
from tornado.httputil import HTTPServerRequest

from codespace.deploy.servers import ServerProcess

# Request headers a model server may use; the caller's credentials never reach it.
PASSED = ("content-type", "accept", "content-encoding", "accept-encoding")
RETURNED = ("content-type", "content-encoding")


async def forward(
    server: ServerProcess, request: HTTPServerRequest, path: str
) -> tuple[int, list[tuple[str, str]], bytes]:
    headers = {k: v for k, v in request.headers.items() if k.lower() in PASSED}
    client = server.shared_client()
    try:
        answer = await client.request(
            request.method or "GET",
            path,
            params=request.query or None,
            content=request.body or None,
            headers=headers,
        )
    except httpx.HTTPError as error:
        return (
            502,
            [("Content-Type", "application/json")],
            (b'{"message": "the model server did not answer: ' + str(error).encode()[:200] + b'"}'),
        )
    kept = [(k, v) for k, v in answer.headers.items() if k.lower() in RETURNED]
    return answer.status_code, kept, answer.content
