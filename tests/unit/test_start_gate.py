"""Server starts go through a fair gate: at most N at once, the others in line, in order."""

from __future__ import annotations

import asyncio

from spawner.start_gate import StartGate, wait_listening


async def test_at_most_n_start_at_once_first_come_first_served() -> None:
    gate = StartGate(2)
    running, peak, order, places = 0, 0, [], {}

    async def start(name: int) -> None:
        nonlocal running, peak
        async with gate.slot(lambda place: places.setdefault(name, place)):
            running += 1
            peak = max(peak, running)
            order.append(name)
            await asyncio.sleep(0.02)
            running -= 1

    tasks = []
    for name in range(6):
        tasks.append(asyncio.ensure_future(start(name)))
        await asyncio.sleep(0)  # they arrive in this order
    await asyncio.gather(*tasks)
    assert peak == 2
    assert order == list(range(6))
    assert places == {2: 1, 3: 2, 4: 3, 5: 4}  # told their place in line; 0 and 1 did not wait
    assert gate.waiting == 0


async def test_a_cancelled_wait_leaves_the_line() -> None:
    gate = StartGate(1)
    held = asyncio.Event()

    async def hold() -> None:
        async with gate.slot(lambda place: None):
            held.set()
            await asyncio.sleep(0.05)

    holder = asyncio.ensure_future(hold())
    await held.wait()
    waiter = asyncio.ensure_future(gate.slot(lambda place: None).__aenter__())
    await asyncio.sleep(0.01)
    assert gate.waiting == 1
    waiter.cancel()
    await asyncio.gather(waiter, return_exceptions=True)
    assert gate.waiting == 0
    await holder
    async with gate.slot(lambda place: None):  # the slot is free again
        pass


async def test_wait_listening_sees_a_server_and_gives_up_on_a_dead_one() -> None:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    assert await wait_listening("127.0.0.1", port, lambda: True, timeout=5)
    server.close()
    await server.wait_closed()
    assert not await wait_listening("127.0.0.1", port, lambda: False, timeout=5)
