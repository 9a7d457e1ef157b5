"""A fleet on one broker, measured: N simulated boxes -> a real Mosquitto on loopback -> ``actwatch hub``.

For each hub set-up (one worker, then two workers on an MQTT 5 shared subscription) and each N
(default 10, 100, 500 boxes), at ``--rate`` events per second per box:

- a fresh Mosquitto (``tests/support/mosquitto.py``) and a fresh ``actwatch hub`` process (SQLite store
  in a temporary folder) are started;
- publisher processes (at most 250 boxes each) run N paho clients, each publishing like a box (the box's event JSON from
  ``actwatch.delivery.payloads.event_payload``, QoS 1, to ``actwatch/<box>/events``) with ``stored_at``
  set when the event is handed to the client (the moment a box's outbox would publish it), spread
  evenly over each second, for ``--seconds``; it records which events the broker acknowledged;
- once publishing ends, the hub gets up to ``--drain`` seconds to store the rest.

Printed per run: events published (PUBACKed), stored by the hub, lost (published but not stored),
hub ingest events/s (stored events over the span of their hub timestamps), end-to-end latency p50/p95
(hub ``created_at`` - box ``stored_at``; one clock, one machine), and the RSS of the broker and of
the hub at the end.

    PYTHONPATH=. .venv/bin/python benchmarks/fleet_bench.py --boxes 10 100 500 --seconds 10
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from actwatch.bench import rss_mb  # noqa: E402
from actwatch.service.events import Event  # noqa: E402
from tests.support.mosquitto import MosquittoBroker  # noqa: E402
from tests.support.net import free_port  # noqa: E402

TOKEN = "fleet-bench-token-0123456789abcdef"


BOXES_PER_PUBLISHER = 250
"""paho's network loop uses select(), which takes no file descriptor above 1023, and each client holds
three (its socket and a wake-up pair): one publisher process runs at most this many boxes."""


def publish(port: int, first: int, count: int, boxes: int, rate: float, seconds: float, out: Path) -> None:
    """A publisher process: boxes ``first`` .. ``first + count - 1`` of ``boxes``, ``rate`` events/s each."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    from actwatch.delivery.payloads import event_payload

    clients = []
    for index in range(first, first + count):
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-box-{index}", protocol=paho.MQTTv5)
        # paho's default of 20 messages in flight is Mosquitto's Receive Maximum: more gets a client cut off.
        client.connect("127.0.0.1", port, keepalive=60)
        client.loop_start()
        clients.append(client)
    sent: list[tuple[str, float, paho.MQTTMessageInfo]] = []
    start = time.time() + 1.0
    total = int(seconds * rate)
    for tick in range(total):
        for index, client in enumerate(clients, start=first):
            due = start + (tick + index / boxes) / rate
            delay = due - time.time()
            if delay > 0:
                time.sleep(delay)
            now = time.time()
            event = Event(
                f"cam{index % 4}", tick, "fall", 0.9, now - 1, now, (1.0, 2.0, 30.0, 60.0), id=f"b{index}t{tick}"
            )
            body = json.dumps(event_payload(event, box=f"box-{index}", stored_at=now, snapshot=False))
            sent.append((event.id, now, client.publish(f"actwatch/box-{index}/events", body, qos=1)))
    acked = {}
    deadline = time.monotonic() + 60  # for all PUBACKs together: what is not acknowledged by then is not counted
    for event_id, stored_at, info in sent:
        try:
            info.wait_for_publish(max(0.0, deadline - time.monotonic()))
        except (RuntimeError, ValueError):
            continue
        if info.is_published():
            acked[event_id] = stored_at
    for client in clients:
        client.disconnect()
        client.loop_stop()
    out.write_text(json.dumps({"attempted": len(sent), "acked": acked}))
    print(f"publisher: {len(sent)} events from {count} boxes, {len(acked)} acknowledged by the broker")


def _wait_ready(port: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the hub was not ready within {timeout_s:.0f} s")


def _stored(db: Path) -> dict[str, float]:
    with sqlite3.connect(db, timeout=30) as conn:
        return dict(conn.execute("SELECT id, created_at FROM events").fetchall())


def run(boxes: int, workers: int, rate: float, seconds: float, drain: float) -> dict[str, float | int | str]:
    with MosquittoBroker() as broker:
        root = Path(tempfile.mkdtemp(prefix="fleet-bench-"))
        port = free_port()
        config = root / "hub.yaml"
        config.write_text(
            json.dumps(
                {
                    "mqtt": {"url": broker.url, "keepalive_s": 60},
                    "data_dir": str(root / "hub"),
                    "server": {"port": port, "token": TOKEN},
                    "workers": workers,
                    "log_level": "WARNING",
                }
            )
        )
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        hub = subprocess.Popen([sys.executable, "-m", "actwatch", "hub", "--config", str(config)], env=env)
        try:
            _wait_ready(port, 120)
            publishers = []
            for first in range(0, boxes, BOXES_PER_PUBLISHER):
                count = min(BOXES_PER_PUBLISHER, boxes - first)
                out = root / f"published-{first}.json"
                args = [str(v) for v in (broker.port, first, count, boxes, rate, seconds, out)]
                publishers.append((out, subprocess.Popen([sys.executable, __file__, "--publisher", *args], env=env)))
            acked: dict[str, float] = {}
            attempted = 0
            for out, process in publishers:
                if process.wait() != 0:
                    raise RuntimeError(f"a publisher failed (exit {process.returncode})")
                result = json.loads(out.read_text())
                acked.update(result["acked"])
                attempted += int(result["attempted"])
            db = root / "hub" / "events.db"
            deadline = time.monotonic() + drain
            while time.monotonic() < deadline and len(_stored(db)) < len(acked):
                time.sleep(0.5)
            stored = _stored(db)
            hub_rss, broker_rss = rss_mb(hub.pid), rss_mb(broker.process.pid if broker.process else 0)
        finally:
            hub.terminate()
            hub.wait(60)
    latencies = sorted(stored[i] - t for i, t in acked.items() if i in stored)
    times = sorted(stored.values())
    span = times[-1] - times[0] if len(times) > 1 else 0.0
    return {
        "boxes": boxes,
        "workers": workers,
        "attempted": attempted,
        "published": len(acked),
        "stored": len(stored),
        "lost": len(set(acked) - set(stored)),
        "ingest_per_s": round(len(stored) / span, 1) if span > 0 else 0.0,
        "p50_ms": round(statistics.median(latencies) * 1000, 1) if latencies else float("nan"),
        "p95_ms": round(latencies[int(0.95 * (len(latencies) - 1))] * 1000, 1) if latencies else float("nan"),
        "broker_rss_mb": round(broker_rss, 1),
        "hub_rss_mb": round(hub_rss, 1),
    }


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--publisher":
        port, first, count, boxes, rate, seconds, out = sys.argv[2:9]
        publish(int(port), int(first), int(count), int(boxes), float(rate), float(seconds), Path(out))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--boxes", type=int, nargs="+", default=[10, 100, 500])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rate", type=float, default=1.0, help="events per second per box")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long each box publishes")
    parser.add_argument("--drain", type=float, default=60.0, help="time the hub gets to catch up afterwards")
    args = parser.parse_args()
    rows = []
    for workers in args.workers:
        for boxes in args.boxes:
            row = run(boxes, workers, args.rate, args.seconds, args.drain)
            print(json.dumps(row), flush=True)
            rows.append(row)
    print("\n| boxes | hub workers | sent | PUBACKed | stored | lost | hub ingest ev/s | e2e p50 ms | e2e p95 ms "
          "| broker RSS MiB | hub RSS MiB |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    columns = ("boxes", "workers", "attempted", "published", "stored", "lost", "ingest_per_s", "p50_ms", "p95_ms")
    for r in rows:
        print("| " + " | ".join(str(r[c]) for c in (*columns, "broker_rss_mb", "hub_rss_mb")) + " |")


if __name__ == "__main__":
    main()
