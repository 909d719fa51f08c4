#!/usr/bin/env python3
"""An independent checker of the grid messages gridlet gateways serve, written from MESH.md (and the
protocol documents it points to, docs/protocols/) alone, in Python with PyNaCl and cbor2.

For every gateway given it walks /api/mesh (identities, registry messages, chain heads), follows every
readings chain through `prev`, and checks each message:
  - envelope: tag 1735551332 around [tag 42 pCID, payload map with text keys, COSE_Sign1 tag 18];
  - determinism: shortest heads, definite lengths, no floats, map keys sorted bytewise, no duplicates;
  - pCID: 0x00 + CIDv1 raw sha2-256 (or without 0x00) of a document in docs/protocols/;
  - proof: protected h'a10127', {4: kid}, nil payload, Ed25519 over
    ["Signature1", h'a10127', h'', bytes(0x82 + pCID item + payload item as received)];
  - the CID that named it is CIDv1 raw sha2-256 of its bytes;
  - signer bound by a gateway identity message of version 2 (gateway-identity-v2.md): the operator's
    Ed25519 signature over the enrollment, and the gateway's XEdDSA signature with its X25519 key (checked
    here as Ed25519 under the Edwards form of that key, computed in plain integers);
  - the device registry merged by device-registry-v2.md's rules (a pairing by another operator while one
    stands is a conflict; a revocation counts only from the pairing's signer or its operator), and the
    state each gateway reports for the device agrees with it;
  - readings written only by gateways of operators that held the device's pairing;
  - payload shape of each protocol;
  - chain coverage: every seq up to the serving gateway's acked seq is carried by some readings message.
Exit 0 when everything holds, 1 otherwise.  Usage: mesh_check.py URL [URL ...] [--docs DIR]
"""
import base64
import hashlib
import json
import os
import sys
import urllib.error
import urllib.request

import cbor2
import nacl.exceptions
import nacl.signing

GRID_TAG = 1735551332
PROTECTED = bytes([0xA1, 0x01, 0x27])
P25519 = 2 ** 255 - 19


class Bad(Exception):
    pass


# ----------------------------------------------------------------- deterministic CBOR (RFC 8949 4.2.1)

def head(b, i):
    if i >= len(b):
        raise Bad("truncated")
    ib = b[i]
    major, info = ib >> 5, ib & 31
    i += 1
    if info < 24:
        return major, info, i, info
    sizes = {24: 1, 25: 2, 26: 4, 27: 8}
    if info not in sizes:
        raise Bad("indefinite length or reserved additional information %d" % info)
    n = sizes[info]
    if i + n > len(b):
        raise Bad("truncated")
    val = int.from_bytes(b[i:i + n], "big")
    if major == 7:
        return major, info, i + n, val
    minimum = {24: 24, 25: 0x100, 26: 0x10000, 27: 0x100000000}[info]
    if val < minimum:
        raise Bad("integer or length not in its shortest form")
    return major, info, i + n, val


def item_end(b, i, depth=0):
    """Checks one deterministic item starting at i; returns where it ends."""
    if depth > 64:
        raise Bad("nesting too deep")
    major, info, j, val = head(b, i)
    if major in (0, 1):
        return j
    if major in (2, 3):
        if j + val > len(b):
            raise Bad("truncated string")
        if major == 3:
            b[j:j + val].decode("utf-8")
        return j + val
    if major == 4:
        for _ in range(val):
            j = item_end(b, j, depth + 1)
        return j
    if major == 5:
        prev = None
        for _ in range(val):
            k = j
            j = item_end(b, j, depth + 1)
            key = bytes(b[k:j])
            if prev is not None and not prev < key:
                raise Bad("map keys not sorted bytewise (or duplicated)")
            prev = key
            j = item_end(b, j, depth + 1)
        return j
    if major == 6:
        return item_end(b, j, depth + 1)
    # major 7: only false, true, null
    if info in (20, 21, 22):
        return j
    raise Bad("float or simple value %d not allowed" % info)


# ----------------------------------------------------------------- CIDs, names

def cid_of(data):
    return b"\x01\x55\x12\x20" + hashlib.sha256(data).digest()


def b32(data):
    return base64.b32encode(data).decode().lower().rstrip("=")


def cid_text(cid):
    return "b" + b32(cid)


def cid_from_text(t):
    if not t.startswith("b"):
        raise Bad("CID text must start with b")
    s = t[1:].upper()
    return base64.b32decode(s + "=" * (-len(s) % 8))


B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def base58btc(data):
    n = int.from_bytes(data, "big")
    s = ""
    while n:
        n, r = divmod(n, 58)
        s = B58[r] + s
    for c in data:
        if c:
            break
        s = "1" + s
    return s


def link_cid(v):
    if not isinstance(v, cbor2.CBORTag) or v.tag != 42 or not isinstance(v.value, bytes):
        raise Bad("expected a tag-42 link")
    raw = v.value
    cid = raw[1:] if len(raw) == 37 and raw[0] == 0 else raw
    if len(cid) != 36 or cid[:4] != b"\x01\x55\x12\x20":
        raise Bad("link is not a CIDv1 raw sha2-256")
    return cid


def is_id(s):
    return isinstance(s, str) and len(s) == 16 and all(c in "abcdefghijklmnopqrstuvwxyz234567" for c in s)


def uint(v):
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


# ----------------------------------------------------------------- enrollment and XEdDSA (gateway-identity-v2.md)

def det(v):
    """Deterministic CBOR of an array of text, byte strings and unsigned integers."""
    return cbor2.dumps(v, canonical=True)


def verify_ed25519(key, message, sig):
    try:
        nacl.signing.VerifyKey(key).verify(message, sig)
        return True
    except (nacl.exceptions.BadSignatureError, ValueError, TypeError):
        return False


def edwards_of(u_bytes):
    """The Edwards public key (sign bit 0) of an X25519 public key, or None."""
    u = int.from_bytes(u_bytes, "little")
    if u >= P25519 or (u + 1) % P25519 == 0:
        return None
    y = (u - 1) * pow(u + 1, P25519 - 2, P25519) % P25519
    return y.to_bytes(32, "little")


def check_identity_v2(p, kid):
    keys = ["ed25519", "enrolled", "enrollment", "gateway", "name", "operator", "peer", "possession", "t", "x25519"]
    if sorted(p) != keys:
        raise Bad("identity keys %s" % sorted(p))
    if p["ed25519"] != kid:
        raise Bad("identity signed by another key")
    if b32(hashlib.sha256(p["x25519"]).digest()[:10]) != p["gateway"]:
        raise Bad("gateway id does not hash from x25519")
    if p["peer"] != base58btc(b"\x00\x24\x08\x01\x12\x20" + kid):
        raise Bad("peer id is not the Ed25519 key's")
    enrollment = b"gridlet enrollment v2\x00" + det([p["gateway"], p["x25519"], p["ed25519"], p["peer"], p["name"], p["enrolled"]])
    if not verify_ed25519(p["operator"], enrollment, p["enrollment"]):
        raise Bad("the operator's enrollment signature does not verify")
    possession = b"gridlet possession v2\x00" + det([p["gateway"], p["ed25519"], p["operator"], p["enrolled"]])
    edwards = edwards_of(p["x25519"])
    if edwards is None or not verify_ed25519(edwards, possession, p["possession"]):
        raise Bad("the XEdDSA proof of the X25519 key does not verify")
    return "op" + b32(p["operator"])


def registry_state(pairings, revocations, operator_of):
    """device-registry-v2 "Merge" for one device: (current pairing CID or None, revoked?, conflicts, holders)."""
    def hlc(p):
        return (p["hlc"][0], p["hlc"][1])

    def revoked_at(cid, pair):
        best = None
        for r in revocations:
            if link_cid(r["pairing"]) != cid_from_text(cid) or hlc(r) <= hlc(pair):
                continue
            if not (r["_kid"] == pair["_kid"] or operator_of(r["_kid"]) == operator_of(pair["_kid"])):
                continue
            if best is None or hlc(r) < best:
                best = hlc(r)
        return best

    order = sorted(pairings.items(), key=lambda kv: (hlc(kv[1]), cid_from_text(kv[0])))
    current, conflicts, holders = None, [], set()
    for cid, pair in order:
        op = operator_of(pair["_kid"])
        if current is None or operator_of(pairings[current]["_kid"]) == op:
            current = cid
        else:
            rev = revoked_at(current, pairings[current])
            if rev is not None and rev < hlc(pair):
                current = cid
            else:
                conflicts.append(cid)
                continue
        holders.add(op)
    revoked = current is not None and revoked_at(current, pairings[current]) is not None
    return current, revoked, conflicts, holders


# ----------------------------------------------------------------- one message

def open_message(data, pcids):
    """Checks envelope, determinism, pCID, proof and signature; returns (protocol, payload, kid)."""
    if item_end(data, 0) != len(data):
        raise Bad("trailing bytes after the message")
    if data[:6] != bytes([0xDA, 0x67, 0x72, 0x69, 0x64, 0x83]):
        raise Bad("not tag 1735551332 around a 3-element array")
    p0 = 6
    p1 = item_end(data, p0)
    p2 = item_end(data, p1)
    p3 = item_end(data, p2)
    if p3 != len(data):
        raise Bad("envelope does not end with the proof")
    whole = cbor2.loads(data)
    if not isinstance(whole, cbor2.CBORTag) or whole.tag != GRID_TAG:
        raise Bad("outer tag")
    pcid_item, payload, proof = whole.value
    pcid = link_cid(pcid_item)
    protocol = pcids.get(pcid)
    if not isinstance(payload, dict) or not all(isinstance(k, str) for k in payload):
        raise Bad("payload must be a map with text keys")
    if not isinstance(proof, cbor2.CBORTag) or proof.tag != 18 or not isinstance(proof.value, list) or len(proof.value) != 4:
        raise Bad("proof must be COSE_Sign1 (tag 18, 4 elements)")
    prot, unprot, detached, sig = proof.value
    if prot != PROTECTED:
        raise Bad("protected header must be h'a10127'")
    if not isinstance(unprot, dict) or list(unprot.keys()) != [4] or not isinstance(unprot[4], bytes) or len(unprot[4]) != 32:
        raise Bad("unprotected header must be {4: 32-byte kid}")
    if detached is not None:
        raise Bad("payload must be detached (nil)")
    if not isinstance(sig, bytes) or len(sig) != 64:
        raise Bad("signature must be 64 bytes")
    signable = b"\x82" + data[p0:p1] + data[p1:p2]
    # ["Signature1", h'a10127', h'', signable], encoded by hand
    n = len(signable)
    bhead = bytes([0x40 | n]) if n < 24 else (b"\x58" + bytes([n]) if n < 256 else (b"\x59" + n.to_bytes(2, "big") if n < 65536 else b"\x5a" + n.to_bytes(4, "big")))
    sig_structure = b"\x84" + b"\x6aSignature1" + b"\x43" + PROTECTED + b"\x40" + bhead + signable
    try:
        nacl.signing.VerifyKey(unprot[4]).verify(sig_structure, sig)
    except nacl.exceptions.BadSignatureError:
        raise Bad("Ed25519 signature does not verify")
    return protocol, payload, unprot[4]


# ----------------------------------------------------------------- the walk

class Checker:
    def __init__(self, docs):
        self.pcids = {}
        for name in sorted(os.listdir(docs)):
            with open(os.path.join(docs, name), "rb") as f:
                self.pcids[cid_of(f.read())] = name
        self.ok = 0
        self.registry_states = 0
        self.problems = []
        self.identities = {}  # kid -> payload
        self.operators = {}  # kid -> operator id

    def get(self, base, path):
        req = urllib.request.Request(base.rstrip("/") + path)
        try:
            with urllib.request.urlopen(req, timeout=20) as r:
                return r.status, r.headers.get("content-type", ""), r.read()
        except urllib.error.HTTPError as e:
            return e.code, "", e.read()

    def block(self, base, cid_t, want=None):
        status, ctype, data = self.get(base, "/api/mesh/blocks/" + cid_t)
        where = "%s %s" % (base, cid_t)
        if status != 200:
            self.problems.append("%s: not served (%d)" % (where, status))
            return None
        if not ctype.startswith("application/cbor"):
            self.problems.append("%s: content-type %r" % (where, ctype))
        if cid_of(data) != cid_from_text(cid_t):
            self.problems.append("%s: bytes hash to %s" % (where, cid_text(cid_of(data))))
            return None
        try:
            protocol, payload, kid = open_message(data, self.pcids)
        except (Bad, ValueError, UnicodeDecodeError, cbor2.CBORDecodeError) as e:
            self.problems.append("%s: %s" % (where, e))
            return None
        if want and protocol not in (want if isinstance(want, tuple) else (want,)):
            self.problems.append("%s: protocol %s, expected %s" % (where, protocol, want))
            return None
        self.ok += 1
        return protocol, payload, kid

    def bound(self, kid, gateway):
        i = self.identities.get(kid)
        return i is not None and i["gateway"] == gateway

    def operator_of(self, kid):
        return self.operators.get(kid)

    def check_gateway(self, base):
        status, _, body = self.get(base, "/api/mesh")
        if status != 200:
            self.problems.append("%s: GET /api/mesh answered %d" % (base, status))
            return
        index = json.loads(body)
        for g in index["gateways"]:
            r = self.block(base, g["cid"], "gateway-identity-v2.md")
            if not r:
                continue
            _, p, kid = r
            try:
                op = check_identity_v2(p, kid)
                if g.get("operator") != op:
                    raise Bad("listed as operator %s but enrolled by %s" % (g.get("operator"), op))
                self.identities[kid] = p
                self.operators[kid] = op
            except (Bad, KeyError, TypeError) as e:
                self.problems.append("%s identity %s: %s" % (base, g["cid"], e))
        pairings = {}
        by_device = {}
        for c in index["registry"]:
            r = self.block(base, c, ("device-registry-v1.md", "device-registry-v2.md"))
            if not r:
                continue
            _, p, kid = r
            try:
                if not self.bound(kid, p.get("gateway")):
                    raise Bad("signer not bound to gateway %s" % p.get("gateway"))
                if not uint(p["hlc"][0]) or not uint(p["hlc"][1]) or len(p["hlc"]) != 2:
                    raise Bad("hlc")
                entry = dict(p, _kid=kid)
                dev = by_device.setdefault(p["device"], ({}, []))
                if p["op"] == "pair":
                    if sorted(p) != ["device", "firmware", "gateway", "hlc", "key", "model", "op"]:
                        raise Bad("pairing keys %s" % sorted(p))
                    if b32(hashlib.sha256(p["key"]).digest()[:10]) != p["device"]:
                        raise Bad("device key does not hash to the device id")
                    pairings[c] = p
                    dev[0][c] = entry
                elif p["op"] == "revoke":
                    if sorted(p) != ["device", "gateway", "hlc", "op", "pairing"]:
                        raise Bad("revocation keys %s" % sorted(p))
                    link_cid(p["pairing"])
                    dev[1].append(entry)
                else:
                    raise Bad("op %r" % p["op"])
            except (Bad, KeyError, TypeError) as e:
                self.problems.append("%s registry %s: %s" % (base, c, e))
        holders = {}
        for device, (pairs, revs) in by_device.items():
            current, revoked, conflicts, held = registry_state(pairs, revs, self.operator_of)
            holders[device] = held
            self.registry_states += 1
            status, _, body = self.get(base, "/api/devices/" + device)
            if status != 200 or current is None:
                continue
            d = json.loads(body)
            want = ("revoked" if revoked else "paired", pairs[current]["gateway"])
            if (d.get("state"), d.get("gateway")) != want:
                self.problems.append("%s device %s: reports %s at %s, the registry merged here says %s at %s"
                                     % (base, device, d.get("state"), d.get("gateway"), want[0], want[1]))
            shown = sorted(c["gateway"] for c in d.get("conflicts", []))
            if shown != sorted(pairs[c]["gateway"] for c in conflicts):
                self.problems.append("%s device %s: conflicts %s, the registry merged here says %s"
                                     % (base, device, shown, sorted(pairs[c]["gateway"] for c in conflicts)))
        for device, heads in index["heads"].items():
            self.check_chain(base, device, heads, holders.get(device))

    def check_chain(self, base, device, heads, holders=None):
        seen, queue, covered = set(), list(heads), []
        while queue:
            c = queue.pop()
            if c in seen:
                continue
            seen.add(c)
            r = self.block(base, c, "meter-readings-v1.md")
            if not r:
                continue
            _, p, kid = r
            try:
                if sorted(p) != ["device", "first", "gateway", "last", "prev", "records"]:
                    raise Bad("readings keys %s" % sorted(p))
                if p["device"] != device or not is_id(p["gateway"]):
                    raise Bad("device or gateway")
                if not self.bound(kid, p["gateway"]):
                    raise Bad("signer not bound to gateway %s" % p["gateway"])
                if holders is not None and self.operator_of(kid) not in holders:
                    raise Bad("signed by a gateway of operator %s, which never held the device's pairing" % self.operator_of(kid))
                recs = p["records"]
                if not recs:
                    raise Bad("no records")
                high = 0
                for rec in recs:
                    seq, t = rec[0], rec[1]
                    if not uint(seq) or seq <= high or not uint(t):
                        raise Bad("record seqs must increase")
                    if len(rec) == 4 and uint(rec[2]) and isinstance(rec[3], int):
                        last = seq
                    elif len(rec) == 5 and rec[2] == "event" and isinstance(rec[3], str) and isinstance(rec[4], dict):
                        last = seq
                    elif len(rec) == 5 and rec[2] == "gap" and uint(rec[3]) and rec[3] >= seq and isinstance(rec[4], str):
                        last = rec[3]
                    else:
                        raise Bad("record shape %r" % (rec,))
                    covered.append((seq, last))
                    high = last
                if p["first"] != recs[0][0] or p["last"] != high:
                    raise Bad("first/last do not match the records")
                prev = p["prev"]
                links = [] if prev is None else ([prev] if isinstance(prev, cbor2.CBORTag) else prev)
                if isinstance(prev, list) and len(prev) < 2:
                    raise Bad("prev array of fewer than two links")
                for link in links:
                    queue.append(cid_text(link_cid(link)))
            except (Bad, KeyError, TypeError, IndexError) as e:
                self.problems.append("%s readings %s: %s" % (base, c, e))
        # chain coverage of every acked seq
        status, _, body = self.get(base, "/api/devices/" + device)
        acked = json.loads(body).get("ackedSeq", 0) if status == 200 else 0
        covered.sort()
        nxt = 1
        for a, b in covered:
            if a > nxt:
                break
            nxt = max(nxt, b + 1)
        if acked >= nxt:
            self.problems.append("%s device %s: acked up to %d but the chain covers only up to %d" % (base, device, acked, nxt - 1))
        return len(seen)


def main(argv):
    docs = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docs", "protocols")
    urls = []
    i = 0
    while i < len(argv):
        if argv[i] == "--docs":
            docs = argv[i + 1]
            i += 2
        else:
            urls.append(argv[i])
            i += 1
    if not urls:
        print(__doc__)
        return 2
    ch = Checker(docs)
    for u in urls:
        ch.check_gateway(u)
    for p in ch.problems:
        print("problem: " + p)
    print("mesh check: %d messages verified from %d gateway(s), %d device registries merged, %d problem(s)"
          % (ch.ok, len(urls), ch.registry_states, len(ch.problems)))
    return 1 if ch.problems or ch.ok == 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
