"""A minimal gateway written from WIRE.md, only to exercise scenario.py's own mechanics.

It is NOT gridlet's gateway and is never used by the interop test; it exists so the scenario runner can
be debugged without one. It needs an external broker (no credentials or ACL enforcement, so the broker
checks of the scenario are expected to fail against it).

    /usr/bin/python3 test/interop/mock_gateway.py --mqtt mqtt://127.0.0.1:1883 --http-port 0
prints `gateway ready mqtt=<url> http=<url> id=<id>` like `gridlet gateway`.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import paho.mqtt.client as mqtt  # noqa: E402

from wire_device import (  # noqa: E402
    NONCE_DOWN, NONCE_UP, PrivateKey, ReplayWindow, SecretBox, crypto_box_beforenm, device_id_of, encode,
    hmac256, lenient_decode, open_box, pair_key_of, parse_frame, seal_frame, session_key, sha256, FrameError,
)


class Mock:
    def __init__(self, client: mqtt.Client, prefix: str) -> None:
        self.c, self.prefix = client, prefix
        self.sk = bytes(PrivateKey.generate())
        self.pk = bytes(PrivateKey(self.sk).public_key)
        self.id = device_id_of(self.pk)
        self.lock = threading.Condition()
        self.hellos: dict[str, bytes] = {}
        self.pending: dict[str, dict] = {}
        self.devices: dict[str, dict] = {}
        self.records: dict[str, dict[int, list]] = {}
        self.dropped = 0

    def on_message(self, client, userdata, msg):  # noqa: ANN001
        parts = msg.topic.split("/")
        with self.lock:
            if parts[2] == "hello":
                self.on_hello(parts[3], bytes(msg.payload))
            elif parts[2] == "d" and parts[4] == "up":
                self.on_up(parts[3], bytes(msg.payload))
            self.lock.notify_all()

    def on_hello(self, dev: str, raw: bytes) -> None:
        h = lenient_decode(raw)
        if device_id_of(h[2]) != dev:
            return
        self.hellos[dev] = raw
        p = self.pending.get(dev)
        if p and h.get(7) == p["n"]:
            p["result"] = 403
        elif p and p.get("result") is None:
            self.c.publish(f"{self.prefix}/v1/pair/{dev}", p["pa"], qos=1)

    def pair(self, dev: str, code: str) -> int:
        with self.lock:
            if dev not in self.hellos:
                return 404
            raw = self.hellos[dev]
            h = lenient_decode(raw)
            n = os.urandom(24)
            K = crypto_box_beforenm(h[2], self.sk)
            hh = sha256(raw)
            pa = encode({1: self.pk, 2: self.id, 3: n,
                         4: SecretBox(K).encrypt(encode({1: dev, 2: hh}), n).ciphertext,
                         5: hmac256(pair_key_of(code), hh, self.pk, n)})
            self.pending[dev] = {"n": n, "pa": pa, "Ks": session_key(K, h[6], n), "result": None}
            self.c.publish(f"{self.prefix}/v1/pair/{dev}", pa, qos=1)
            self.lock.wait_for(lambda: self.pending[dev]["result"] is not None, 15)
            return self.pending.pop(dev)["result"] or 504

    def on_up(self, dev: str, frame: bytes) -> None:
        d = self.devices.get(dev)
        p = self.pending.get(dev)
        Ks = d["Ks"] if d and d["state"] == "paired" else (p["Ks"] if p else None)
        if Ks is None:
            self.dropped += 1
            return
        win = d["win"] if d and d["Ks"] == Ks else ReplayWindow()
        try:
            counter, salt, box = parse_frame(frame)
            if win.check(counter):
                raise FrameError("window")
            body = lenient_decode(open_box(Ks, NONCE_UP, counter, salt, box))
            if not isinstance(body, dict):
                raise FrameError("body")
            win.accept(counter)
        except Exception:  # noqa: BLE001
            self.dropped += 1
            return
        t = body.get(0)
        if t == 5 and p:
            self.devices[dev] = {"Ks": Ks, "win": win, "state": "paired", "down": 0}
            p["result"] = 201
            return
        recs = self.records.setdefault(dev, {})
        now = int(time.time())
        if t == 1:
            for i, (rt, ch, v) in enumerate(body[2]):
                recs.setdefault(body[1] + i, [body[1] + i, rt or now, ch, v])
        elif t == 2:
            recs.setdefault(body[1], [body[1], body[2] or now, "event", body[3], body.get(4, {})])
        elif t == 7:
            recs.setdefault(body[1], [body[1], now, "gap", body[2], body[3]])
        else:
            return
        a = 0
        while True:
            r = recs.get(a + 1)
            if r is None:
                break
            a = r[3] if r[2] == "gap" else a + 1
        self.down(dev, {0: 16, 1: a})

    def down(self, dev: str, body: dict) -> None:
        d = self.devices[dev]
        d["down"] += 1
        self.c.publish(f"{self.prefix}/v1/d/{dev}/down", seal_frame(d["Ks"], NONCE_DOWN, d["down"], encode(body)), qos=1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mqtt", default="mqtt://127.0.0.1:1883")
    ap.add_argument("--http-port", type=int, default=0)
    ap.add_argument("--prefix", default="gl")
    a = ap.parse_args()
    u = urllib.parse.urlparse(a.mqtt)
    c = mqtt.Client(client_id=f"mock-gw-{os.getpid()}")
    m = Mock(c, a.prefix)
    c.on_message = m.on_message
    c.on_connect = lambda cl, ud, fl, rc: cl.subscribe([(f"{a.prefix}/v1/hello/+", 1), (f"{a.prefix}/v1/d/+/up", 1)])
    c.connect(u.hostname, u.port or 1883)
    c.loop_start()

    class H(BaseHTTPRequestHandler):
        def log_message(self, *args):  # noqa: ANN002
            pass

        def reply(self, status: int, obj=None, text: str | None = None):  # noqa: ANN001
            data = (text if text is not None else json.dumps(obj)).encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain" if text is not None else "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):  # noqa: N802
            path = urllib.parse.urlparse(self.path).path.split("/")
            if self.path == "/metrics":
                return self.reply(200, text=f"# TYPE mock_frames_dropped_total counter\nmock_frames_dropped_total {m.dropped}\n")
            if len(path) >= 4 and path[1:3] == ["api", "devices"]:
                dev = path[3]
                with m.lock:
                    if len(path) == 5 and path[4] == "readings":
                        return self.reply(200, {"records": [r for _, r in sorted(m.records.get(dev, {}).items())]})
                    state = m.devices[dev]["state"] if dev in m.devices else ("seen" if dev in m.hellos else None)
                if state is None:
                    return self.reply(404, {"error": "unknown"})
                return self.reply(200, {"id": dev, "state": state, "gateway": m.id, "labels": []})
            self.reply(404, {"error": "no route"})

        def do_POST(self):  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            status = m.pair(body["deviceId"], body["code"])
            self.reply(status, {"status": status})

        def do_DELETE(self):  # noqa: N802
            dev = self.path.split("/")[3]
            with m.lock:
                m.down(dev, {0: 24})
                m.devices[dev]["state"] = "revoked"
            self.reply(200, {"id": dev, "state": "revoked"})

    srv = ThreadingHTTPServer(("127.0.0.1", a.http_port), H)
    print(f"gateway ready mqtt={a.mqtt} http=http://127.0.0.1:{srv.server_address[1]} id={m.id}", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
