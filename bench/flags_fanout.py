#!/usr/bin/env python3
"""How long a flag change takes to reach many SDK-like clients.

Opens N connections to the server's change stream (GET /ofrep/v1/events,
Server-Sent Events), then, R times: flips a flag with the management API and
times, per client, from just before the change request is sent to the moment
that client has read the `refetchEvaluation` notification. Prints the
median, p99 and max over all (client, round) pairs, and the median time for
the last client of a round ("all of them reached").

Standard library only (asyncio streams, a small chunked-encoding decoder).
Loopback only; bounded: every wait has a timeout.

    python3 bench/flags_fanout.py --port 7070 --token T --clients 1000 --rounds 5
"""
import argparse
import asyncio
import json
import statistics
import sys
import time


def pct(values, p):
    values = sorted(values)
    if not values:
        return float("nan")
    k = min(len(values) - 1, max(0, int(round(p / 100.0 * len(values) + 0.5)) - 1))
    return values[k]


class Client:
    """One SSE connection; counts notifications as they arrive."""

    def __init__(self):
        self.arrivals = []  # monotonic time of each refetchEvaluation
        self.ready = asyncio.Event()
        self.changed = asyncio.Event()

    async def run(self, host, port, token):
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(
            (
                "GET /ofrep/v1/events HTTP/1.1\r\n"
                f"Host: {host}:{port}\r\nAuthorization: Bearer {token}\r\n"
                "Accept: text/event-stream\r\n\r\n"
            ).encode()
        )
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        if b" 200 " not in head.split(b"\r\n", 1)[0]:
            raise RuntimeError(f"stream refused: {head[:80]!r}")
        chunked = b"transfer-encoding: chunked" in head.lower()
        self.ready.set()
        text = b""
        while True:
            if chunked:
                size_line = await reader.readuntil(b"\r\n")
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    return
                data = await reader.readexactly(size + 2)
                text += data[:-2]
            else:
                data = await reader.read(65536)
                if not data:
                    return
                text += data
            while b"\n\n" in text:
                event, text = text.split(b"\n\n", 1)
                if b"refetchEvaluation" in event:
                    self.arrivals.append(time.monotonic())
                    self.changed.set()


async def http(host, port, method, path, token, body):
    reader, writer = await asyncio.open_connection(host, port)
    payload = json.dumps(body).encode()
    writer.write(
        (
            f"{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
        ).encode()
        + payload
    )
    await writer.drain()
    status = (await reader.readline()).split()[1]
    await reader.read()
    writer.close()
    return int(status)


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--token", required=True)
    ap.add_argument("--flag", default="checkout")
    ap.add_argument("--clients", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()

    clients = [Client() for _ in range(a.clients)]
    tasks = []
    for i in range(0, a.clients, 100):  # connect in batches: no SYN storm
        for c in clients[i : i + 100]:
            tasks.append(asyncio.create_task(c.run(a.host, a.port, a.token)))
        await asyncio.wait_for(
            asyncio.gather(*(c.ready.wait() for c in clients[i : i + 100])), 30
        )
    await asyncio.sleep(0.5)

    per_client, last_of_round, change_ms = [], [], []
    for r in range(a.rounds):
        for c in clients:
            c.changed.clear()
        before = [len(c.arrivals) for c in clients]
        t0 = time.monotonic()
        status = await http(
            a.host,
            a.port,
            "POST",
            f"/api/v1/flags/{a.flag}/rollout",
            a.token,
            {"environment": "production", "percentage": 10 + r, "reason": "fan-out bench"},
        )
        change_ms.append((time.monotonic() - t0) * 1000)
        if status != 200:
            sys.exit(f"the change was refused: {status}")
        await asyncio.wait_for(
            asyncio.gather(
                *(c.changed.wait() for c, b in zip(clients, before) if len(c.arrivals) == b)
            ),
            30,
        )
        lat = [(c.arrivals[b] - t0) * 1000 for c, b in zip(clients, before)]
        per_client.extend(lat)
        last_of_round.append(max(lat))
        await asyncio.sleep(0.3)

    for t in tasks:
        t.cancel()
    print(
        f"fanout clients: {a.clients} rounds: {a.rounds} "
        f"median_ms: {statistics.median(per_client):.1f} p99_ms: {pct(per_client, 99):.1f} "
        f"max_ms: {max(per_client):.1f} all_reached_median_ms: {statistics.median(last_of_round):.1f} "
        f"change_request_median_ms: {statistics.median(change_ms):.1f}"
    )


if __name__ == "__main__":
    asyncio.run(main())
