"""An independent Python implementation of the device side of gridlet's wire protocol v1.

Written from /work/shared/design/WIRE.md alone (no gridlet sources were read), so that an interop
run against `gridlet gateway` shows the gateway speaks the documented protocol and not merely
whatever the TypeScript device happens to send.

Run with Debian's /usr/bin/python3 (python3-nacl, python3-cbor2, python3-paho-mqtt).
`/usr/bin/python3 test/interop/wire_device.py --self-test` checks the pure parts against hand-computed
values (CBOR determinism, nonce layout, key derivations, pairing verification, replay window).

Layers, bottom up:
  * encoding helpers: b32, sha256, hmac, deterministic CBOR (cbor2 canonical + our own strict checker)
  * identity: X25519 key pair, device id, pair secret / pair code / pair key, boot nonce
  * pairing: Hello, PairAccept verification, session key, MQTT password
  * frames: nonce layout, seal/open, counters, replay window
  * bodies: uplink builders, downlink parser
  * Device: the MQTT side (paho-mqtt 1.6 API)
"""
from __future__ import annotations

import base64
import hashlib
import hmac as _hmac
import os
import queue
import secrets
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import cbor2
from nacl.bindings import crypto_box_beforenm
from nacl.exceptions import CryptoError
from nacl.public import PrivateKey
from nacl.secret import SecretBox

PROTOCOL_VERSION = 1
MAX_FRAME_BYTES = 2048
MAX_COUNTER = 2**53 - 1
WINDOW = 64
NONCE_UP = 0x11  # high nibble: protocol version 1; low nibble: direction (1 up)
NONCE_DOWN = 0x12  # (2 down)
HELLO_INTERVAL_S = 60
PAIR_FAILURES_BEFORE_LOCKOUT = 5
PAIR_LOCKOUT_S = 600

# Uplink body types
T_READINGS = 1
T_EVENT = 2
T_STATUS = 3
T_JOB = 4
T_PAIRED = 5
T_GUEST_ACK = 6
T_GAP = 7
T_DOWN_ACK = 8
# Downlink body types
T_ACK = 16
T_CONFIG = 17
T_GUEST_OFFER = 18
T_GUEST_CHUNK = 19
T_GUEST_REMOVE = 20
T_DR_EVENT = 21
T_JOB_RESULT = 22
T_TIME = 23
T_UNPAIR = 24
T_TARIFF = 25
DOWN_NAMES = {
    T_ACK: "ack", T_CONFIG: "config", T_GUEST_OFFER: "guest-offer", T_GUEST_CHUNK: "guest-chunk",
    T_GUEST_REMOVE: "guest-remove", T_DR_EVENT: "dr-event", T_JOB_RESULT: "job-result", T_TIME: "time",
    T_UNPAIR: "unpair", T_TARIFF: "tariff",
}
# Downlink bodies that change state: the gateway keeps them until a down-ack covers their counter.
STATEFUL_DOWN = {T_CONFIG, T_GUEST_OFFER, T_GUEST_CHUNK, T_GUEST_REMOVE, T_DR_EVENT, T_UNPAIR, T_TARIFF}

B32_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"


# ---------------------------------------------------------------------------------------------
# Encoding helpers
# ---------------------------------------------------------------------------------------------

def b32(data: bytes) -> str:
    """RFC 4648 base32, lowercase, no padding."""
    return base64.b32encode(data).decode("ascii").rstrip("=").lower()


def sha256(*parts: bytes) -> bytes:
    h = hashlib.sha256()
    for p in parts:
        h.update(p)
    return h.digest()


def hmac256(key: bytes, *parts: bytes) -> bytes:
    return _hmac.new(key, b"".join(parts), hashlib.sha256).digest()


class CborError(ValueError):
    """Bytes that are not well-formed, deterministic, v1 CBOR."""


def _head(major: int, value: int) -> bytes:
    if value < 24:
        return bytes([(major << 5) | value])
    if value < 0x100:
        return bytes([(major << 5) | 24, value])
    if value < 0x10000:
        return bytes([(major << 5) | 25]) + value.to_bytes(2, "big")
    if value < 0x100000000:
        return bytes([(major << 5) | 26]) + value.to_bytes(4, "big")
    if value < 0x10000000000000000:
        return bytes([(major << 5) | 27]) + value.to_bytes(8, "big")
    raise CborError(f"integer out of CBOR range: {value}")


def cbor_encode_reference(obj: Any) -> bytes:
    """A tiny hand-written deterministic encoder (RFC 8949 §4.2.1), used to cross-check cbor2.

    Map keys are sorted bytewise by their encoding, which is the §4.2.1 rule; cbor2's canonical mode
    sorts length-first (the old RFC 7049 rule), which agrees for the single-type key sets v1 uses but
    not in general, so encode() verifies cbor2's output against this.
    """
    if obj is True:
        return b"\xf5"
    if obj is False:
        return b"\xf4"
    if obj is None:
        return b"\xf6"
    if isinstance(obj, int):
        return _head(0, obj) if obj >= 0 else _head(1, -1 - obj)
    if isinstance(obj, (bytes, bytearray)):
        return _head(2, len(obj)) + bytes(obj)
    if isinstance(obj, str):
        b = obj.encode("utf-8")
        return _head(3, len(b)) + b
    if isinstance(obj, (list, tuple)):
        return _head(4, len(obj)) + b"".join(cbor_encode_reference(x) for x in obj)
    if isinstance(obj, dict):
        items = sorted((cbor_encode_reference(k), cbor_encode_reference(v)) for k, v in obj.items())
        for a, b in zip(items, items[1:]):
            if a[0] == b[0]:
                raise CborError("duplicate map key")
        return _head(5, len(items)) + b"".join(k + v for k, v in items)
    raise CborError(f"type not allowed on the v1 wire: {type(obj).__name__}")


def encode(obj: Any) -> bytes:
    """Deterministic CBOR: cbor2 canonical mode, checked against the §4.2.1 rules."""
    data = cbor2.dumps(obj, canonical=True)
    ref = cbor_encode_reference(obj)
    if data != ref:
        # cbor2 differs from §4.2.1 here (e.g. mixed-type map keys): the reference wins.
        data = ref
    strict_decode(data)  # belt and braces: what we send must pass our own receiver's checks
    return data


def strict_decode(data: bytes) -> Any:
    """Decode CBOR and insist on v1's rules: deterministic (§4.2.1), no floats, no tags, no undefined.

    Raises CborError naming the first violation. Returns ints, bytes, str, list, dict, bool, None.
    """
    data = bytes(data)
    value, pos = _decode_item(data, 0, 0)
    if pos != len(data):
        raise CborError(f"{len(data) - pos} trailing bytes after the CBOR item")
    return value


def _read_arg(data: bytes, pos: int) -> tuple[int, int, int]:
    if pos >= len(data):
        raise CborError("truncated")
    ib = data[pos]
    major, ai = ib >> 5, ib & 0x1F
    pos += 1
    if ai < 24:
        return major, ai, pos
    if ai == 31:
        raise CborError(f"indefinite length (major type {major}) at byte {pos - 1}")
    if ai > 27:
        raise CborError(f"reserved additional info {ai} at byte {pos - 1}")
    if major == 7:
        raise CborError(f"float or simple value with a following argument (0x{ib:02x}) at byte {pos - 1}")
    n = 1 << (ai - 24)
    if pos + n > len(data):
        raise CborError("truncated argument")
    value = int.from_bytes(data[pos:pos + n], "big")
    minimum = {1: 24, 2: 0x100, 4: 0x10000, 8: 0x100000000}[n]
    if value < minimum:
        raise CborError(f"non-shortest argument {value} in {n} byte(s) at byte {pos - 1}")
    return major, value, pos + n


def _decode_item(data: bytes, pos: int, depth: int) -> tuple[Any, int]:
    if depth > 32:
        raise CborError("nesting too deep")
    start = pos
    major, arg, pos = _read_arg(data, pos)
    if major == 0:
        return arg, pos
    if major == 1:
        return -1 - arg, pos
    if major in (2, 3):
        if pos + arg > len(data):
            raise CborError("truncated string")
        raw = data[pos:pos + arg]
        pos += arg
        if major == 2:
            return raw, pos
        try:
            return raw.decode("utf-8"), pos
        except UnicodeDecodeError as e:
            raise CborError(f"invalid UTF-8 in text string at byte {start}") from e
    if major == 4:
        out = []
        for _ in range(arg):
            v, pos = _decode_item(data, pos, depth + 1)
            out.append(v)
        return out, pos
    if major == 5:
        result: dict[Any, Any] = {}
        prev_key_bytes = None
        for _ in range(arg):
            kstart = pos
            k, pos = _decode_item(data, pos, depth + 1)
            kbytes = data[kstart:pos]
            if prev_key_bytes is not None and not prev_key_bytes < kbytes:
                what = "duplicate" if prev_key_bytes == kbytes else "unsorted"
                raise CborError(f"{what} map key {k!r} at byte {kstart} (keys must be sorted bytewise)")
            prev_key_bytes = kbytes
            if isinstance(k, (list, dict)):
                raise CborError("map key is an array or map")
            v, pos = _decode_item(data, pos, depth + 1)
            result[k] = v
        return result, pos
    if major == 6:
        raise CborError(f"tag {arg} at byte {start} (v1 uses no tags; cbor-x needs tagUint8Array: false)")
    # major 7 with ai < 24
    if arg == 20:
        return False, pos
    if arg == 21:
        return True, pos
    if arg == 22:
        return None, pos
    if arg == 23:
        raise CborError(f"undefined at byte {start}")
    raise CborError(f"simple value {arg} at byte {start}")


def lenient_decode(data: bytes) -> Any:
    """What the device acts on: any well-formed CBOR (cbor2). Determinism is checked separately."""
    return cbor2.loads(bytes(data))


# ---------------------------------------------------------------------------------------------
# Identity
# ---------------------------------------------------------------------------------------------

def device_id_of(public_key: bytes) -> str:
    """b32(sha256(devicePublicKey)[0..10]): 10 bytes, 16 characters. Same rule for gateway ids."""
    if len(public_key) != 32:
        raise ValueError("X25519 public keys are 32 bytes")
    return b32(sha256(public_key)[:10])


def is_well_formed_id(s: str) -> bool:
    return len(s) == 16 and all(c in B32_ALPHABET for c in s)


def normalize_pair_code(code: str) -> str:
    """Accept any case, with or without the dash; return the 10 lower-case characters."""
    s = code.strip().replace("-", "").lower()
    if len(s) != 10 or any(c not in B32_ALPHABET for c in s):
        raise ValueError(f"not a pair code: {code!r}")
    return s


def pair_key_of(code: str) -> bytes:
    """Key form of a pair code: sha256("gridlet-pair-v1" || 10 lower-case characters, no dash)."""
    return sha256(b"gridlet-pair-v1", normalize_pair_code(code).encode("ascii"))


def pair_chars_from_bits(bits50: int) -> str:
    """50 bits -> 10 base32 characters, most significant 5 bits first."""
    if not 0 <= bits50 < 1 << 50:
        raise ValueError("pair secret is 50 bits")
    return "".join(B32_ALPHABET[(bits50 >> (45 - 5 * i)) & 31] for i in range(10))


def display_pair_code(chars: str) -> str:
    s = normalize_pair_code(chars).upper()
    return f"{s[:5]}-{s[5:]}"


@dataclass
class Identity:
    """What a device keeps in flash for life: its X25519 key pair and its pair secret."""
    secret_key: bytes
    pair_chars: str  # the pair secret as 10 lower-case base32 characters

    @classmethod
    def generate(cls) -> "Identity":
        return cls(bytes(PrivateKey.generate()), pair_chars_from_bits(secrets.randbits(50)))

    @property
    def public_key(self) -> bytes:
        return bytes(PrivateKey(self.secret_key).public_key)

    @property
    def device_id(self) -> str:
        return device_id_of(self.public_key)

    @property
    def pair_code(self) -> str:
        return display_pair_code(self.pair_chars)

    @property
    def pair_key(self) -> bytes:
        return pair_key_of(self.pair_chars)


# ---------------------------------------------------------------------------------------------
# Pairing
# ---------------------------------------------------------------------------------------------

def build_hello(identity: Identity, boot_nonce: bytes, model: str, firmware: str,
                capabilities: list[str], rejected_n: bytes | None = None) -> bytes:
    if len(boot_nonce) != 16:
        raise ValueError("boot nonce is 16 bytes")
    body: dict[int, Any] = {1: PROTOCOL_VERSION, 2: identity.public_key, 3: model, 4: firmware,
                            5: list(capabilities), 6: boot_nonce}
    if rejected_n is not None:
        body[7] = rejected_n
    return encode(body)


def session_key(K: bytes, boot_nonce: bytes, n: bytes) -> bytes:
    """Ks = sha256("gridlet-session-v1" || K || boot nonce || n)."""
    return sha256(b"gridlet-session-v1", K, boot_nonce, n)


def mqtt_password(Ks: bytes) -> str:
    """b32(hmac(Ks, "mqtt")): 52 characters."""
    return b32(hmac256(Ks, b"mqtt"))


class PairRejected(Exception):
    """A PairAccept that failed the device's checks; .n is the nonce reported in the next Hello."""

    def __init__(self, reason: str, n: bytes | None):
        super().__init__(reason)
        self.reason = reason
        self.n = n


@dataclass
class Session:
    gateway_public_key: bytes
    gateway_id: str
    Ks: bytes
    K: bytes
    n: bytes
    hello_hash: bytes
    up_counter: int = 0  # last counter used uplink
    down: "ReplayWindow" = field(default_factory=lambda: ReplayWindow())

    def next_up_counter(self) -> int:
        self.up_counter += 1
        if self.up_counter > MAX_COUNTER:
            raise OverflowError("uplink counter exhausted; the device must pair again")
        return self.up_counter


def verify_pair_accept(identity: Identity, boot_nonce: bytes, hello_hashes: list[bytes],
                       payload: bytes, pinned_gateway_id: str | None = None) -> Session:
    """WIRE.md Pairing step 4. Returns the new session, or raises PairRejected."""
    try:
        pa = lenient_decode(payload)
    except Exception as e:  # noqa: BLE001 - any decoding failure is a failed attempt
        raise PairRejected(f"PairAccept does not decode: {e}", None) from e
    if not isinstance(pa, dict):
        raise PairRejected("PairAccept is not a map", None)
    n = pa.get(3)
    n = n if isinstance(n, bytes) else None
    gw_pk, gw_id, box, mac = pa.get(1), pa.get(2), pa.get(4), pa.get(5)
    if not isinstance(gw_pk, bytes) or len(gw_pk) != 32:
        raise PairRejected("field 1 (gateway public key) is not 32 bytes", n)
    if not isinstance(gw_id, str):
        raise PairRejected("field 2 (gateway id) is not text", n)
    if n is None or len(n) != 24:
        raise PairRejected("field 3 (nonce) is not 24 bytes", n)
    if not isinstance(box, bytes) or not isinstance(mac, bytes):
        raise PairRejected("field 4 or 5 is not a byte string", n)
    # 1. hmac(pairKey, h || gatewayPublicKey || n) for one of the Hellos sent during this boot
    h = None
    for cand in hello_hashes:
        if _hmac.compare_digest(hmac256(identity.pair_key, cand, gw_pk, n), mac):
            h = cand
            break
    if h is None:
        raise PairRejected("field 5 (hmac) does not match our pair key and any Hello of this boot", n)
    # 2. field 4 opens with K = box.before(gatewayPublicKey, deviceSecretKey), naming our id and h
    K = crypto_box_beforenm(gw_pk, identity.secret_key)
    try:
        inner_raw = SecretBox(K).decrypt(box, n)
    except CryptoError as e:
        raise PairRejected("field 4 (secretbox) does not open", n) from e
    try:
        inner = lenient_decode(inner_raw)
    except Exception as e:  # noqa: BLE001
        raise PairRejected(f"field 4 plaintext does not decode: {e}", n) from e
    if not isinstance(inner, dict) or inner.get(1) != identity.device_id or inner.get(2) != h:
        raise PairRejected("field 4 does not name this device id and the accepted Hello's hash", n)
    # 3. field 2 equals b32(sha256(field 1)[0..10])
    if gw_id != device_id_of(gw_pk):
        raise PairRejected("field 2 (gateway id) does not match field 1 (gateway key)", n)
    if pinned_gateway_id is not None and gw_id != pinned_gateway_id:
        raise PairRejected(f"gateway {gw_id} is not the pinned gateway {pinned_gateway_id}", n)
    return Session(gateway_public_key=gw_pk, gateway_id=gw_id, Ks=session_key(K, boot_nonce, n), K=K,
                   n=n, hello_hash=h)


def build_pair_accept(gateway_secret_key: bytes, device_public_key: bytes, hello_bytes: bytes,
                      pair_code: str, n: bytes | None = None) -> bytes:
    """The gateway's side of Pairing step 3 - only for the self-test, never used against a gateway."""
    gw_pk = bytes(PrivateKey(gateway_secret_key).public_key)
    n = n or os.urandom(24)
    K = crypto_box_beforenm(device_public_key, gateway_secret_key)
    h = sha256(hello_bytes)
    inner = encode({1: device_id_of(device_public_key), 2: h})
    return encode({1: gw_pk, 2: device_id_of(gw_pk), 3: n, 4: SecretBox(K).encrypt(inner, n).ciphertext,
                   5: hmac256(pair_key_of(pair_code), h, gw_pk, n)})


# ---------------------------------------------------------------------------------------------
# Frames
# ---------------------------------------------------------------------------------------------

class FrameError(ValueError):
    pass


def frame_nonce(direction: int, counter: int, salt: bytes) -> bytes:
    """byte 0: 0x11 up / 0x12 down; bytes 1-8: counter (u64 BE); 9-16: salt; 17-23: zero."""
    if direction not in (NONCE_UP, NONCE_DOWN):
        raise ValueError("direction byte is 0x11 or 0x12")
    if len(salt) != 8:
        raise ValueError("salt is 8 bytes")
    if not 1 <= counter <= MAX_COUNTER:
        raise ValueError("counter out of range")
    return bytes([direction]) + counter.to_bytes(8, "big") + salt + bytes(7)


def seal_frame(Ks: bytes, direction: int, counter: int, body: bytes, salt: bytes | None = None) -> bytes:
    salt = os.urandom(8) if salt is None else salt
    box = SecretBox(Ks).encrypt(body, frame_nonce(direction, counter, salt)).ciphertext
    frame = encode([PROTOCOL_VERSION, counter, salt, box])
    if len(frame) > MAX_FRAME_BYTES:
        raise FrameError(f"frame of {len(frame)} bytes exceeds {MAX_FRAME_BYTES}")
    return frame


def parse_frame(frame: bytes) -> tuple[int, bytes, bytes]:
    """Outer structure only: returns (counter, salt, box)."""
    if len(frame) > MAX_FRAME_BYTES:
        raise FrameError(f"frame of {len(frame)} bytes exceeds {MAX_FRAME_BYTES}")
    try:
        arr = lenient_decode(frame)
    except Exception as e:  # noqa: BLE001
        raise FrameError(f"frame does not decode: {e}") from e
    if not (isinstance(arr, list) and len(arr) == 4):
        raise FrameError("frame is not a 4-element array")
    version, counter, salt, box = arr
    if version != PROTOCOL_VERSION:
        raise FrameError(f"frame version {version!r}")
    if not isinstance(counter, int) or isinstance(counter, bool) or not 1 <= counter <= MAX_COUNTER:
        raise FrameError(f"counter {counter!r} out of range")
    if not isinstance(salt, bytes) or len(salt) != 8:
        raise FrameError("salt is not 8 bytes")
    if not isinstance(box, bytes):
        raise FrameError("box is not a byte string")
    return counter, salt, box


def open_box(Ks: bytes, direction: int, counter: int, salt: bytes, box: bytes) -> bytes:
    try:
        return SecretBox(Ks).decrypt(box, frame_nonce(direction, counter, salt))
    except CryptoError as e:
        raise FrameError("box does not open") from e


class ReplayWindow:
    """Highest accepted counter plus a 64-wide window below it (WIRE.md Frames).

    Reading chosen: counters highest-64 .. highest-1 are "the window below it", tracked by a bitmap;
    anything lower is stale. check() is side-effect free so a frame is only marked after its box opened
    and its body decoded.
    """

    def __init__(self) -> None:
        self.highest = 0
        self.bits = 0  # bit i set: counter highest-1-i was accepted

    def check(self, counter: int) -> str | None:
        """None if acceptable, else the reason to drop."""
        if not 1 <= counter <= MAX_COUNTER:
            return "counter out of range"
        if counter > self.highest:
            return None
        if counter == self.highest:
            return "repeated counter"
        d = self.highest - counter
        if d > WINDOW:
            return "stale counter (below the window)"
        if self.bits >> (d - 1) & 1:
            return "repeated counter"
        return None

    def accept(self, counter: int) -> None:
        reason = self.check(counter)
        if reason:
            raise FrameError(reason)
        if counter > self.highest:
            shift = counter - self.highest
            if self.highest:
                self.bits = ((self.bits << shift) | (1 << (shift - 1))) & ((1 << WINDOW) - 1)
            self.highest = counter
        else:
            self.bits |= 1 << (self.highest - counter - 1)


def open_downlink(session: Session, frame: bytes) -> tuple[int, Any]:
    """Receiver side for downlinks: window check, box, body decode; only then mark the counter."""
    counter, salt, box = parse_frame(frame)
    reason = session.down.check(counter)
    if reason:
        raise FrameError(reason)
    plain = open_box(session.Ks, NONCE_DOWN, counter, salt, box)
    try:
        body = lenient_decode(plain)
    except Exception as e:  # noqa: BLE001
        raise FrameError(f"body does not decode: {e}") from e
    if not isinstance(body, dict) or not isinstance(body.get(0), int):
        raise FrameError("body is not a map with an integer type at key 0")
    session.down.accept(counter)
    return counter, body


# ---------------------------------------------------------------------------------------------
# Bodies
# ---------------------------------------------------------------------------------------------

def body_readings(first_seq: int, records: list[tuple[int, int, int]]) -> dict:
    for t, ch, v in records:
        if not all(isinstance(x, int) and not isinstance(x, bool) for x in (t, ch, v)):
            raise TypeError("readings are integers (no floats in v1)")
    return {0: T_READINGS, 1: first_seq, 2: [[t, ch, v] for t, ch, v in records]}


def body_event(seq: int, t: int, kind: str, data: dict | None = None) -> dict:
    b: dict[int, Any] = {0: T_EVENT, 1: seq, 2: t, 3: kind}
    if data is not None:
        b[4] = data
    return b


def body_status(t: int, uptime_s: int, buffered: int, dropped: int, heap: int,
                guests: list[tuple[str, bytes, str]], link: str) -> dict:
    return {0: T_STATUS, 1: t, 2: uptime_s, 3: buffered, 4: dropped, 5: heap,
            6: [[n, c, s] for n, c, s in guests], 7: link}


def body_paired(firmware: str, model: str) -> dict:
    return {0: T_PAIRED, 1: firmware, 2: model}


def body_gap(first_seq: int, last_seq: int, reason: str = "full") -> dict:
    return {0: T_GAP, 1: first_seq, 2: last_seq, 3: reason}


def body_down_ack(counter: int) -> dict:
    return {0: T_DOWN_ACK, 1: counter}


def body_job(job_id: int, kind: str, inp: dict) -> dict:
    return {0: T_JOB, 1: job_id, 2: kind, 3: inp}


def body_guest_ack(cid: bytes, state: str, reason: str | None = None) -> dict:
    b: dict[int, Any] = {0: T_GUEST_ACK, 1: cid, 2: state}
    if reason is not None:
        b[3] = reason
    return b


# ---------------------------------------------------------------------------------------------
# The device on MQTT
# ---------------------------------------------------------------------------------------------

@dataclass
class Downlink:
    counter: int
    body: dict
    raw: bytes
    deterministic_error: str | None  # None when the frame and the body are deterministic CBOR
    at: float

    @property
    def type_name(self) -> str:
        return DOWN_NAMES.get(self.body.get(0), f"type {self.body.get(0)}")


class Device:
    """One device: Hello until paired, then frames. Thread-safe enough for a test driver.

    paho's network thread only queues messages; a worker thread handles them, so handlers may
    publish and wait for PUBACKs.
    """

    def __init__(self, host: str, port: int, prefix: str = "gl", identity: Identity | None = None,
                 model: str = "py-interop", firmware: str = "0.1.0-py",
                 capabilities: list[str] | None = None, pinned_gateway_id: str | None = None,
                 log: Callable[[str], None] | None = None, answer_pair_accepts: bool = True,
                 publish_qos: int = 1) -> None:
        import paho.mqtt.client as mqtt  # imported here so the pure parts work without paho
        self._mqtt = mqtt
        self.host, self.port, self.prefix = host, port, prefix
        self.identity = identity or Identity.generate()
        self.id = self.identity.device_id
        self.model, self.firmware = model, firmware
        self.capabilities = capabilities if capabilities is not None else ["readings", "events"]
        self.pinned_gateway_id = pinned_gateway_id
        self.answer_pair_accepts = answer_pair_accepts
        self.publish_qos = publish_qos  # WIRE.md says 1; 0 only as a diagnostic (scenario --diagnostic-qos0)
        self.log = log or (lambda s: None)
        self.boot_nonce = os.urandom(16)
        self.hello_hashes: list[bytes] = []  # sha256 of every Hello sent this boot
        self.hellos_sent: list[dict] = []
        self.pending_rejected_n: bytes | None = None
        self.pair_failures = 0
        self.rejected_ns: set[bytes] = set()
        self.pair_lockout_until = 0.0
        self.pair_log: list[tuple[str, str]] = []  # ("accepted"|"rejected"|"ignored", detail)
        self.pair_accepts_raw: list[bytes] = []
        self.session: Session | None = None
        self.last_session: Session | None = None  # kept after unpair so a test can misuse it
        self.downlinks: list[Downlink] = []
        self.dropped_downlinks: list[tuple[str, bytes]] = []
        self.connacks: list[tuple[bool, int]] = []  # (with credentials, rc)
        self.unpaired_count = 0
        self._cond = threading.Condition()
        self._inbox: "queue.Queue[tuple[str, Any]]" = queue.Queue()
        self._client: Any = None
        self._stop = threading.Event()
        self._worker = threading.Thread(target=self._work, name=f"dev-{self.id}", daemon=True)
        self._hello_timer: threading.Thread | None = None
        self._connected = threading.Event()

    # topics --------------------------------------------------------------------------------
    def topic(self, kind: str) -> str:
        if kind == "hello":
            return f"{self.prefix}/v1/hello/{self.id}"
        if kind == "pair":
            return f"{self.prefix}/v1/pair/{self.id}"
        return f"{self.prefix}/v1/d/{self.id}/{kind}"  # up, down, lwt

    # lifecycle -----------------------------------------------------------------------------
    def start(self, timeout: float = 10.0) -> None:
        self._worker.start()
        self._connect(credentials=None, timeout=timeout)
        self._hello_timer = threading.Thread(target=self._hello_loop, daemon=True)
        self._hello_timer.start()

    def stop(self) -> None:
        self._stop.set()
        self._inbox.put(("stop", None))
        c = self._client
        if c is not None:
            try:
                c.disconnect()
                c.loop_stop()
            except Exception:  # noqa: BLE001
                pass

    def credentials(self) -> tuple[str, str] | None:
        s = self.session
        return (self.id, mqtt_password(s.Ks)) if s else None

    def _connect(self, credentials: tuple[str, str] | None, timeout: float = 10.0) -> int:
        """(Re)connect with a fresh paho client; returns the CONNACK rc (0 accepted)."""
        mqtt = self._mqtt
        old = self._client
        if old is not None:
            try:
                old.disconnect()
                old.loop_stop()
            except Exception:  # noqa: BLE001
                pass
        self._connected.clear()
        result: dict[str, int] = {}
        got = threading.Event()
        c = mqtt.Client(client_id=self.id, clean_session=False, protocol=mqtt.MQTTv311)
        if credentials:
            c.username_pw_set(credentials[0], credentials[1])
        c.will_set(self.topic("lwt"), payload=b"", qos=1, retain=False)

        def on_connect(client, userdata, flags, rc):  # noqa: ANN001
            self.connacks.append((credentials is not None, rc))
            result.setdefault("rc", rc)
            got.set()
            if rc == 0:
                client.subscribe([(self.topic("pair"), 1), (self.topic("down"), 1)])
                self._connected.set()
                self._inbox.put(("connected", None))

        def on_disconnect(client, userdata, rc):  # noqa: ANN001
            self._connected.clear()
            if not got.is_set():
                result.setdefault("rc", -1)
                got.set()

        def on_message(client, userdata, msg):  # noqa: ANN001
            self._inbox.put(("msg", (msg.topic, bytes(msg.payload))))

        c.on_connect, c.on_disconnect, c.on_message = on_connect, on_disconnect, on_message
        c.reconnect_delay_set(1, 5)
        self._client = c
        try:
            c.connect(self.host, self.port, keepalive=30)
        except OSError as e:
            raise ConnectionError(f"cannot reach MQTT {self.host}:{self.port}: {e}") from e
        c.loop_start()
        got.wait(timeout)
        rc = result.get("rc", -2)
        if rc == 0:
            # wait for SUBACK to be likely processed before returning
            time.sleep(0.2)
        return rc

    def reconnect(self, with_credentials: bool, timeout: float = 10.0) -> int:
        return self._connect(self.credentials() if with_credentials else None, timeout)

    def _hello_loop(self) -> None:
        while not self._stop.wait(HELLO_INTERVAL_S):
            if self.session is None and self._connected.is_set():
                self._inbox.put(("hello", None))

    # publishing ----------------------------------------------------------------------------
    def publish(self, topic: str, payload: bytes, timeout: float = 10.0) -> bool:
        """QoS 1 publish; True once the broker PUBACKed."""
        if not self._connected.wait(timeout):
            return False
        info = self._client.publish(topic, payload, qos=self.publish_qos)
        try:
            info.wait_for_publish(timeout)
        except (RuntimeError, ValueError):
            return False
        return info.is_published()

    def send_hello(self) -> bytes:
        hello = build_hello(self.identity, self.boot_nonce, self.model, self.firmware, self.capabilities,
                            self.pending_rejected_n)
        self.hello_hashes.append(sha256(hello))
        self.hellos_sent.append(strict_decode(hello))
        self.pending_rejected_n = None
        self.publish(self.topic("hello"), hello)
        self.log(f"{self.id}: Hello #{len(self.hello_hashes)}"
                 + (" reporting a rejected PairAccept" if 7 in self.hellos_sent[-1] else ""))
        return hello

    def seal(self, body: dict, counter: int | None = None, session: Session | None = None) -> bytes:
        s = session or self.session
        if s is None:
            raise RuntimeError("not paired")
        if counter is None:
            counter = s.next_up_counter()
        else:
            s.up_counter = max(s.up_counter, counter)
        return seal_frame(s.Ks, NONCE_UP, counter, encode(body))

    def send(self, body: dict, counter: int | None = None, session: Session | None = None) -> bytes:
        """Seal and publish one body; returns the frame bytes."""
        frame = self.seal(body, counter, session)
        if not self.publish(self.topic("up"), frame):
            raise ConnectionError("uplink publish was not acknowledged by the broker")
        return frame

    def publish_up(self, frame: bytes) -> bool:
        return self.publish(self.topic("up"), frame)

    # waiting -------------------------------------------------------------------------------
    def wait_for(self, pred: Callable[[], Any], timeout: float) -> Any:
        end = time.monotonic() + timeout
        with self._cond:
            while True:
                v = pred()
                if v:
                    return v
                left = end - time.monotonic()
                if left <= 0:
                    return v
                self._cond.wait(left)

    def downlinks_since(self, mark: int, type_: int | None = None) -> list[Downlink]:
        with self._cond:
            return [d for d in self.downlinks[mark:] if type_ is None or d.body.get(0) == type_]

    def wait_downlink(self, mark: int, type_: int, pred: Callable[[dict], bool] = lambda b: True,
                      timeout: float = 5.0) -> Downlink | None:
        def find():
            for d in self.downlinks[mark:]:
                if d.body.get(0) == type_ and pred(d.body):
                    return d
            return None
        return self.wait_for(find, timeout)

    def wait_ack(self, mark: int, seq: int, timeout: float = 5.0) -> Downlink | None:
        return self.wait_downlink(mark, T_ACK, lambda b: isinstance(b.get(1), int) and b[1] >= seq, timeout)

    def mark(self) -> int:
        with self._cond:
            return len(self.downlinks)

    # the worker ----------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            kind, arg = self._inbox.get()
            if kind == "stop":
                return
            try:
                if kind == "connected":
                    if self.session is None:
                        self.send_hello()  # Hello on every connect while unpaired
                elif kind == "hello":
                    if self.session is None:
                        self.send_hello()
                elif kind == "msg":
                    topic, payload = arg
                    if topic == self.topic("pair"):
                        self._on_pair_accept(payload)
                    elif topic == self.topic("down"):
                        self._on_down(payload)
                elif kind == "call":
                    arg()
            except Exception as e:  # noqa: BLE001 - a device never dies of one bad message
                self.log(f"{self.id}: worker error: {type(e).__name__}: {e}")
            with self._cond:
                self._cond.notify_all()

    def _on_pair_accept(self, payload: bytes) -> None:
        self.pair_accepts_raw.append(payload)
        if self.session is not None:
            self.pair_log.append(("ignored", "already paired"))
            return
        if not self.answer_pair_accepts:
            self.pair_log.append(("ignored", "silent device"))
            return
        if time.monotonic() < self.pair_lockout_until:
            self.pair_log.append(("ignored", "locked out after 5 failed attempts"))
            return
        try:
            s = verify_pair_accept(self.identity, self.boot_nonce, self.hello_hashes, payload,
                                   self.pinned_gateway_id)
        except PairRejected as e:
            if e.n is not None and e.n in self.rejected_ns:
                # The gateway resends the same PairAccept on every Hello; that is the same attempt,
                # already reported - neither count it again nor answer it (no Hello ping-pong).
                self.pair_log.append(("ignored", "same PairAccept as an attempt already rejected"))
                return
            if e.n is not None:
                self.rejected_ns.add(e.n)
            self.pair_failures += 1
            self.pair_log.append(("rejected", e.reason))
            self.log(f"{self.id}: PairAccept rejected: {e.reason}")
            if self.pair_failures >= PAIR_FAILURES_BEFORE_LOCKOUT:
                self.pair_lockout_until = time.monotonic() + PAIR_LOCKOUT_S
                self.pair_failures = 0
            if e.n is not None:
                # "A failed attempt is reported in its next Hello as field 7": we send that Hello now
                # rather than up to 60 s later, so the operator's waiting HTTP call can learn the outcome.
                self.pending_rejected_n = e.n
                self.send_hello()
            return
        self.session = s
        self.pair_failures = 0
        self.pair_log.append(("accepted", s.gateway_id))
        self.log(f"{self.id}: paired with gateway {s.gateway_id}")
        # Its first Frame carries a `paired` body (sent on the connection we have).
        self.send(body_paired(self.firmware, self.model))
        # From now on the broker wants user name = id, password = b32(hmac(Ks, "mqtt")).
        self._connect(self.credentials())

    def _on_down(self, frame: bytes) -> None:
        s = self.session
        if s is None:
            self.dropped_downlinks.append(("not paired", frame))
            return
        try:
            counter, body = open_downlink(s, frame)
        except FrameError as e:
            self.dropped_downlinks.append((str(e), frame))
            self.log(f"{self.id}: dropped downlink: {e}")
            return
        det_err = None
        try:
            strict_decode(frame)
            strict_decode(open_box(s.Ks, NONCE_DOWN, *parse_frame(frame)))
        except CborError as e:
            det_err = str(e)
        d = Downlink(counter, body, frame, det_err, time.time())
        with self._cond:
            self.downlinks.append(d)
        t = body.get(0)
        self.log(f"{self.id}: downlink #{counter} {d.type_name} {({k: v for k, v in body.items() if k})}")
        if t == T_UNPAIR:
            # acknowledge with the old session, then forget the gateway and return to Hello
            try:
                self.send(body_down_ack(counter))
            except Exception as e:  # noqa: BLE001
                self.log(f"{self.id}: could not down-ack unpair: {e}")
            self.last_session = s
            self.session = None
            self.unpaired_count += 1
            # next connects carry no credentials; Hello right away on this connection
            self._client.username_pw_set(None, None)
            if self._connected.is_set():
                self.send_hello()
        elif t in STATEFUL_DOWN:
            # this test device "stores" every state-changing body in self.downlinks
            self.send(body_down_ack(counter))


# ---------------------------------------------------------------------------------------------
# Self-test (hand-computed values)
# ---------------------------------------------------------------------------------------------

def self_test() -> int:
    failures = 0

    def check(name: str, ok: bool, detail: str = "") -> None:
        nonlocal failures
        print(f"{'PASS' if ok else 'FAIL'} {name}" + (f" — {detail}" if detail and not ok else ""))
        if not ok:
            failures += 1

    hx = bytes.fromhex
    # CBOR: shortest-form integers
    for v, want in [(0, "00"), (23, "17"), (24, "1818"), (255, "18ff"), (256, "190100"),
                    (65535, "19ffff"), (65536, "1a00010000"), (2**32 - 1, "1affffffff"),
                    (2**32, "1b0000000100000000"), (2**53 - 1, "1b001fffffffffffff"),
                    (-1, "20"), (-24, "37"), (-25, "3818"), (-1000, "3903e7")]:
        check(f"cbor int {v}", encode(v) == hx(want), encode(v).hex())
    # CBOR: a readings body, hand-encoded
    got = encode(body_readings(5, [(1700000000, 1, 12345)]))
    check("cbor readings body", got == hx("a3" "0001" "0105" "02" "81" "83" "1a6553f100" "01" "193039"), got.hex())
    # CBOR: integer map keys sorted numerically (bytewise), text keys bytewise (shorter first)
    got = encode({10: 0, 2: 0, 1: 0, 0: 0, 24: 0})
    check("cbor int keys sorted", got == hx("a5" "0000" "0100" "0200" "0a00" "181800"), got.hex())
    got = encode({"on": True, "id": "r1", "by": "guest"})
    check("cbor text keys sorted", got == hx("a3" "626279" "656775657374" "626964" "627231" "626f6e" "f5"), got.hex())
    got = encode({"aa": 1, "b": 2})
    check("cbor shorter text key first", got == hx("a2" "616202" "62616101"), got.hex())
    # cbor2 canonical vs §4.2.1 on mixed key types: we must produce the bytewise order
    got = encode({"": 1, 100: 2})
    check("cbor mixed keys bytewise (§4.2.1)", got == hx("a2" "18640260" "01"), got.hex())
    check("cbor bytes are major type 2", encode(b"\x01\x02") == hx("420102"))
    check("cbor text is major type 3", encode("é") == hx("62c3a9"))
    # strict decoder rejects what v1 forbids
    for name, bad in [("non-shortest int", "1817"), ("indefinite array", "9f01ff"), ("float", "f93c00"),
                      ("tag 64", "d840420102"), ("unsorted keys", "a202000100"),
                      ("duplicate keys", "a201000100"), ("undefined", "f7"), ("trailing", "0000")]:
        try:
            strict_decode(hx(bad))
            check(f"strict decode rejects {name}", False, "accepted")
        except CborError:
            check(f"strict decode rejects {name}", True)
    check("strict decode round-trip", strict_decode(hx("a3000101050281831a6553f10001193039"))
          == {0: 1, 1: 5, 2: [[1700000000, 1, 12345]]})
    # base32 (RFC 4648 test vectors, lowercased, unpadded)
    check("b32 vectors", [b32(x) for x in (b"", b"f", b"fo", b"foo", b"foob", b"fooba", b"foobar")]
          == ["", "my", "mzxq", "mzxw6", "mzxw6yq", "mzxw6ytb", "mzxw6ytboi"])
    # HMAC-SHA256 (RFC 4231 case 2)
    check("hmac vector", hmac256(b"Jefe", b"what do ya want for nothing?").hex()
          == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    # X25519 and box.before (RFC 7748 §6.1 keys; NaCl's "firstkey" test vector)
    alice_sk = hx("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
    bob_sk = hx("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")
    alice_pk = bytes(PrivateKey(alice_sk).public_key)
    bob_pk = bytes(PrivateKey(bob_sk).public_key)
    check("x25519 public key", alice_pk.hex() == "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
    check("x25519 public key (bob)", bob_pk.hex() == "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
    first = "1b27556473e985d462cd51197a9a46c76009549eac6474f206c4ee0844f68389"
    check("box.before(bob_pk, alice_sk)", crypto_box_beforenm(bob_pk, alice_sk).hex() == first)
    check("box.before is symmetric", crypto_box_beforenm(alice_pk, bob_sk).hex() == first)
    # device id: 10 bytes of sha256 -> 16 base32 chars
    did = device_id_of(alice_pk)
    check("device id = b32(sha256(pk)[:10])", did == base64.b32encode(hashlib.sha256(alice_pk).digest()[:10]).decode().lower()
          and len(did) == 16 and is_well_formed_id(did), did)
    # pair secret / code / key
    check("pair chars from bits", pair_chars_from_bits(0) == "aaaaaaaaaa" and pair_chars_from_bits(2**50 - 1) == "7777777777"
          and pair_chars_from_bits(1) == "aaaaaaaaab" and pair_chars_from_bits(31 << 45) == "7aaaaaaaaa")
    check("pair code display", display_pair_code("abcdefghij") == "ABCDE-FGHIJ")
    pk_ref = hashlib.sha256(b"gridlet-pair-v1abcdefghij").digest()
    check("pair key form", all(pair_key_of(c) == pk_ref for c in ("ABCDE-FGHIJ", "abcdefghij", "aBcDe-FgHiJ", "ABCDEFGHIJ")))
    for bad in ("ABCDE-FGHI", "ABCDE-FGHI1", "ABCDE-FGHIJK"):
        try:
            pair_key_of(bad)
            check(f"pair code {bad!r} refused", False)
        except ValueError:
            check(f"pair code {bad!r} refused", True)
    # session key and MQTT password
    K, bn, n = bytes(range(32)), bytes(range(16)), bytes(range(24))
    Ks = session_key(K, bn, n)
    check("session key layout", Ks == hashlib.sha256(b"gridlet-session-v1" + K + bn + n).digest())
    pw = mqtt_password(Ks)
    check("mqtt password is 52 lower-case b32 chars", len(pw) == 52 and all(c in B32_ALPHABET for c in pw)
          and pw == base64.b32encode(_hmac.new(Ks, b"mqtt", hashlib.sha256).digest()).decode().rstrip("=").lower())
    # nonce layout
    salt = bytes(range(1, 9))
    check("nonce up", frame_nonce(NONCE_UP, 1, salt).hex() == "11" "0000000000000001" "0102030405060708" "00000000000000")
    check("nonce down", frame_nonce(NONCE_DOWN, 0x0102030405, salt).hex() == "12" "0000000102030405" "0102030405060708" "00000000000000")
    check("nonce max counter", frame_nonce(NONCE_UP, MAX_COUNTER, salt)[1:9].hex() == "001fffffffffffff")
    for badc in (0, MAX_COUNTER + 1):
        try:
            frame_nonce(NONCE_UP, badc, salt)
            check(f"nonce refuses counter {badc}", False)
        except ValueError:
            check(f"nonce refuses counter {badc}", True)
    # frame: [1, counter, salt, box] and box = secretbox(body, nonce, Ks) (MAC first, 16 bytes)
    body = encode(body_paired("1.0", "m"))
    fr = seal_frame(Ks, NONCE_UP, 7, body, salt)
    arr = strict_decode(fr)
    check("frame shape", arr[0] == 1 and arr[1] == 7 and arr[2] == salt and len(arr[3]) == len(body) + 16)
    check("frame prefix bytes", fr[:12] == hx("84" "01" "07" "48") + salt)
    check("frame box opens with the up nonce", SecretBox(Ks).decrypt(arr[3], frame_nonce(NONCE_UP, 7, salt)) == body)
    try:
        SecretBox(Ks).decrypt(arr[3], frame_nonce(NONCE_DOWN, 7, salt))
        check("frame box does not open with the down nonce", False)
    except CryptoError:
        check("frame box does not open with the down nonce", True)
    # replay window
    w = ReplayWindow()
    for c in (5, 3, 4, 70, 6):
        w.accept(c)
    check("window accepts out of order within 64", w.highest == 70 and w.check(6) == "repeated counter"
          and w.check(70) == "repeated counter" and w.check(69) is None and w.check(7) is None)
    check("window drops below it", w.check(5) is not None and w.check(1) is not None and w.check(0) is not None)
    w.accept(200)
    check("window slides", w.check(136) is None and w.check(135) is not None and w.check(200) is not None)
    # pairing round trip against a hand-built gateway side
    dev = Identity(alice_sk, "abcdefghij")
    gw_sk = bob_sk
    hello = build_hello(dev, bn, "m", "1.0", ["readings"])
    hd = strict_decode(hello)
    check("hello fields", hd == {1: 1, 2: alice_pk, 3: "m", 4: "1.0", 5: ["readings"], 6: bn})
    pa = build_pair_accept(gw_sk, alice_pk, hello, "ABCDE-FGHIJ", n)
    s = verify_pair_accept(dev, bn, [sha256(b"other"), sha256(hello)], pa)
    check("pair accept verifies", s.gateway_id == device_id_of(bob_pk) and s.K.hex() == first
          and s.Ks == session_key(bytes.fromhex(first), bn, n))
    check("pinned gateway accepted", verify_pair_accept(dev, bn, [sha256(hello)], pa, device_id_of(bob_pk)) is not None)
    for name, args in [
        ("wrong code", (build_pair_accept(gw_sk, alice_pk, hello, "ABCDE-FGHIK", n), None)),
        ("unknown hello", (build_pair_accept(gw_sk, alice_pk, hello + b"x", "ABCDE-FGHIJ", n), None)),
        ("other pinned gateway", (pa, "aaaaaaaaaaaaaaaa")),
    ]:
        try:
            verify_pair_accept(dev, bn, [sha256(hello)], args[0], args[1])
            check(f"pair accept refused: {name}", False)
        except PairRejected as e:
            check(f"pair accept refused: {name}", e.n == n, e.reason)
    tampered = strict_decode(pa)
    tampered[2] = "aaaaaaaaaaaaaaaa"
    try:
        verify_pair_accept(dev, bn, [sha256(hello)], encode(tampered))
        check("pair accept refused: gateway id mismatch", False)
    except PairRejected as e:
        check("pair accept refused: gateway id mismatch", "field 2" in e.reason, e.reason)
    tampered = strict_decode(pa)
    tampered[4] = bytes([tampered[4][0] ^ 1]) + tampered[4][1:]
    try:
        verify_pair_accept(dev, bn, [sha256(hello)], encode(tampered))
        check("pair accept refused: box tampered", False)
    except PairRejected as e:
        check("pair accept refused: box tampered", "field 4" in e.reason, e.reason)
    # downlink receive path
    sess = Session(bob_pk, device_id_of(bob_pk), Ks, K, n, sha256(hello))
    d1 = seal_frame(Ks, NONCE_DOWN, 1, encode({0: T_ACK, 1: 9}))
    check("downlink opens", open_downlink(sess, d1) == (1, {0: T_ACK, 1: 9}))
    for name, fr2 in [("replay", d1), ("up nonce", seal_frame(Ks, NONCE_UP, 2, encode({0: T_TIME, 1: 5}))),
                      ("forged", d1[:-1] + bytes([d1[-1] ^ 0x80]))]:
        try:
            open_downlink(sess, fr2)
            check(f"downlink {name} dropped", False)
        except FrameError:
            check(f"downlink {name} dropped", True)
    check("downlink counter 2 still usable after drops", open_downlink(sess, seal_frame(Ks, NONCE_DOWN, 2, encode({0: T_UNPAIR})))[0] == 2)
    print(f"self-test: {'all passed' if not failures else f'{failures} failed'}")
    return 1 if failures else 0


if __name__ == "__main__":
    if "--self-test" in sys.argv:
        sys.exit(self_test())
    print(__doc__)
