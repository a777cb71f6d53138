#!/usr/bin/env python3
"""make-seeds.py - writes the seed corpora of tests/fuzz/corpus/<target>/.

Seeds are small valid (and a few nearly valid) inputs in each target's input
format, so that a short fuzz run starts deep in the code instead of at the
first length check. Every file is generated here, deterministically, with the
standard library only; re-run after changing an input format:

    python3 tests/fuzz/make-seeds.py            # rewrites tests/fuzz/corpus/

The formats are described at the top of each tests/fuzz/fuzz_<target>.c.
"""
import base64
import hashlib
import hmac
import json
import os
import shutil
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")

# Shared with fuzz_jwt.c and fuzz_frontend.c.
SECRET = b"fuzz-secret-0123456789abcdef-0123456789"
NOW = 1700000000
LATER = 4102444800  # 2100-01-01: never expired under the fuzzers' fake clock

CON, NON, ACK, RST = 0, 1, 2, 3
GET, POST, PUT, DELETE, FETCH = 1, 2, 3, 4, 5


def code(c, d):
    return c << 5 | d


# Option numbers (RFC 7252, 7641, 7959, 7967).
IF_MATCH, URI_HOST, ETAG, OBSERVE, URI_PORT = 1, 3, 4, 6, 7
LOCATION_PATH, URI_PATH, CONTENT_FORMAT, MAX_AGE, URI_QUERY = 8, 11, 12, 14, 15
ACCEPT, BLOCK2, BLOCK1, SIZE2, PROXY_URI, PROXY_SCHEME, SIZE1 = 17, 23, 27, 28, 35, 39, 60
NO_RESPONSE = 258


def uint(v):
    if v == 0:
        return b""
    n = (v.bit_length() + 7) // 8
    return v.to_bytes(n, "big")


def block(num, more, szx):
    return uint(num << 4 | (8 if more else 0) | szx)


def _nib(v):
    if v < 13:
        return v, b""
    if v < 269:
        return 13, bytes([v - 13])
    return 14, struct.pack(">H", v - 269)


def coap(mtype, mcode, mid, token=b"", opts=(), payload=b"", ver=1):
    """One CoAP message; opts is a list of (number, bytes), sorted stably."""
    out = bytearray([ver << 6 | mtype << 4 | len(token), mcode, mid >> 8, mid & 255])
    out += token
    last = 0
    for num, val in sorted(opts, key=lambda o: o[0]):
        dn, de = _nib(num - last)
        ln, le = _nib(len(val))
        out.append(dn << 4 | ln)
        out += de + le + val
        last = num
    if payload:
        out += b"\xff" + payload
    return bytes(out)


def path(p):
    return [(URI_PATH, s.encode()) for s in p.strip("/").split("/") if p.strip("/")]


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=")


def jwt(claims, header=None, secret=SECRET):
    header = header or {"alg": "HS256", "typ": "JWT"}
    h = b64url(json.dumps(header, separators=(",", ":")).encode())
    c = b64url(json.dumps(claims, separators=(",", ":")).encode())
    sig = hmac.new(secret, h + b"." + c, hashlib.sha256).digest()
    return h + b"." + c + b"." + b64url(sig)


GOOD = {"sub": "alice", "iat": NOW, "exp": LATER}


def write(target, seeds):
    d = os.path.join(CORPUS, target)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    for name, data in seeds.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)


# ---- fuzz_coap: one datagram ----------------------------------------------

def seeds_coap():
    tok = b"\x01\x02\x03\x04"
    return {
        "get": coap(CON, GET, 0x1234, tok, path("temp")),
        "post_payload": coap(NON, POST, 0x0001, b"tk", path("echo") + [(CONTENT_FORMAT, b"")], b"hello"),
        "empty_ack": coap(ACK, 0, 0x4242),
        "rst": coap(RST, 0, 0x4243),
        "observe_block2": coap(CON, GET, 7, tok, path("a/b") + [(OBSERVE, b""), (BLOCK2, block(0, False, 2))]),
        "proxy_uri": coap(CON, GET, 8, tok, [(PROXY_URI, b"coap://0011223344556677/temp?unit=C")]),
        "response": coap(ACK, code(2, 5), 9, tok, [(ETAG, b"\x01\x02"), (MAX_AGE, uint(60)),
                                                    (CONTENT_FORMAT, uint(50))], b'{"t":21}'),
        "long_options": coap(CON, PUT, 10, b"12345678",
                             [(URI_PATH, b"x" * 20), (URI_QUERY, b"q" * 300), (NO_RESPONSE, uint(26)),
                              (2049, b"\x00")], b"p" * 40),
    }


# ---- fuzz_route: mode byte + Proxy-Uri or pieces --------------------------

def seeds_route():
    return {
        "uri": b"\x00coap://0011223344556677/temp?unit=C",
        "uri_v6_port": b"\x00coap://[fd00::1]:4849/a/%41b?x=1&y",
        "uri_self": b"\x00coap://localhost/sessions",
        "uri_https": b"\x00https://0011223344556677/",
        "uri_dots": b"\x00coap://0011223344556677/a/../b",
        "scheme_pieces": b"\x01coap\x000011223344556677\x00\x12\xf1\x00a/b\x00q=1&r",
        "scheme_block2_post": b"\x1bcoap\x000200000000000001\x00\x00sensors/temp\x00",
        "scheme_unsafe": b"\x05CoAP\x00gw.example\x00\x00x\x00",
    }


# ---- fuzz_jwt: mode byte + token / JSON / mint request --------------------

def seeds_jwt():
    return {
        "raw_good": b"\x00" + jwt(GOOD),
        "raw_scope": b"\x00" + jwt(dict(GOOD, devices=["0011223344556677", "00AA*"])),
        "raw_scope_str": b"\x00" + jwt(dict(GOOD, devices="0011223344556677, 02*")) + b"\r\n",
        "raw_expired": b"\x00" + jwt(dict(GOOD, exp=NOW - 10)),
        "raw_alg_none": b"\x00" + b64url(b'{"alg":"none"}') + b"." + b64url(json.dumps(GOOD).encode()) + b".",
        "raw_strict": b"\x06" + jwt(dict(GOOD, iss="coapgw-fuzz", aud=["x", "gw"], nbf=NOW - 5)),
        "signed_claims": b"\x01" + json.dumps(dict(GOOD, nbf=NOW, devices=["02*"])).encode(),
        "signed_header": b"\x01" + b'{"alg":"HS256","typ":"JWT","kid":"k"}\x00' + json.dumps(GOOD).encode(),
        "signed_strict_real": b"\x04" + json.dumps({"sub": "bob", "exp": NOW + 0.5, "iss": "coapgw-fuzz",
                                                    "aud": "gw"}).encode(),
        "mint": b"\x02alice\x000011*,0200000000000001",
        "mint_all": b"\x05svc-account\x00",
    }


# ---- fuzz_msg: envelopes and ring scripts ---------------------------------

def envelope(kind, data, security=0, flags=0, tkl=2, token=b"tk", ep_family=4, mac=b"\x00\x11\x22\x33\x44\x55\x66\x77"):
    ep = struct.pack("<BBH16s", ep_family, 0, 40000, b"\x7f\x00\x00\x01")
    hdr = struct.pack("<BBBBHBBQQ", kind, security, 0, flags, len(data), CON, tkl, 1 << 56 | 7, 42)
    hdr += ep + token.ljust(8, b"\0") + mac + struct.pack("<IBBH4xQ", 0, 0, 0, 0x1234, 99)
    assert len(hdr) == 80
    return hdr + data


def seeds_msg():
    req = coap(CON, GET, 0, b"\0" * 8, path("temp"))
    return {
        "env_req": b"\x00" + envelope(1, req),
        "env_resp_notify": b"\x02" + envelope(2, coap(CON, code(2, 5), 0, b"tk", [(OBSERVE, uint(9))], b"21"),
                                               flags=0x04),
        "env_mesh_rx_v6": b"\x04" + envelope(6, coap(ACK, code(2, 5), 3, b"\1" * 8), security=1, ep_family=6),
        "env_bad_kind": b"\x00" + envelope(9, b""),
        "ring_push_pop": b"\x01" + bytes([0x10, 0x20, 0x80 | 0x30, 0x80 | 0x10, 0x7f, 0xbf, 0xbf, 0x81]),
        "ring_full": b"\x01" + bytes([0x05] * 9 + [0x9f] * 9),
        "ring_corrupt": b"\x01" + bytes([0x10, 0x11, 0xc0, 0xff, 0xff, 0, 0, 0xbf, 0xc1, 8, 0, 0, 0, 0xbf, 0xbf]),
    }


# ---- fuzz_mesh_frame: frames, sealed scripts, plain datagrams --------------

def rec(seq, pt):
    return seq.to_bytes(6, "big") + bytes([len(pt)]) + pt


def seeds_mesh_frame():
    ack = coap(ACK, code(2, 5), 0x1001, b"\x11" * 8, [], b"21.5")
    return {
        "raw_short": b"\x00\xa1\x00\x00\x00\x00\x00\x01" + b"\x00" * 8,
        "raw_forged": b"\x00\xa1\x00\x00\x00\x00\x00\x07" + ack + b"\x55" * 8,
        "raw_bad_version": b"\x00\xa2" + b"\x00" * 30,
        "sealed_in_order": b"\x01" + rec(1, ack) + rec(2, b"x") + rec(3, b""),
        "sealed_replay": b"\x01" + rec(5, ack) + rec(5, ack) + rec(4, b"y") + rec(70, b"z") + rec(6, b"old"),
        "sealed_far": b"\x01" + rec(0x800000000001, ack) + rec(0x800000000001, ack),
        "sealed_damaged": b"\x01" + rec(9, b"\xc0" * 0xc1),
        "plain": b"\x02" + ack,
    }


# ---- fuzz_devfile: a devices file ------------------------------------------

KEY = "000102030405060708090a0b0c0d0e0f"


def seeds_devfile():
    return {
        "minimal": ("mac,address,type,key\n0011223344556677,10.0.0.1,normal,%s\n" % KEY).encode(),
        "full": ("# generated\nmac,address,type,key,plain_port,secure_port,sim\n"
                 "0200000000000001,127.0.10.1,normal,%s,5683,4849,latency=50-80;loss=10\n"
                 "0200000000000002, fd00::2 ,MILLI,%s,,4850\n"
                 "\n  # comment\n"
                 "0200000000000003,127.0.10.3,milli,%s\n" % (KEY, KEY.upper(), KEY)).encode(),
        "crlf_bom": ("\ufeffmac,address,type,key\r\n0011223344556677,10.0.0.1,normal,%s\r\n" % KEY).encode(),
        "bad_lines": ("mac,address,type,key,plain_port\n"
                      "0011223344556677,10.0.0.1,normal,%s,99999\n"
                      "001122334455667,10.0.0.1,normal,%s\n"
                      "0011223344556677,10.0.0.300,normal,%s\n"
                      "0011223344556678,10.0.0.1,weird,%s\n"
                      "0011223344556679,10.0.0.1,normal,%s,5683,4849\n"
                      "0011223344556677,10.0.0.9,normal,%s\n"
                      "0011223344556677,10.0.0.9,normal,%s\n" % ((KEY,) * 7)).encode(),
        "no_header": ("0011223344556677,10.0.0.1,normal,%s\n" % KEY).encode(),
        "same_ports": ("mac,address,type,key,plain_port,secure_port\n"
                       "0011223344556677,10.0.0.1,normal,%s,5683,5683\n" % KEY).encode(),
    }


# ---- fuzz_config: a configuration file --------------------------------------

def seeds_config():
    return {
        "typical": b"# coapgw.conf\nlisten = 0.0.0.0:5683\ninstance = prod\nfrontends = 2\n"
                   b"ring_slots = 2048\nlog_level = warn\nnames = gw.example, coapgw\n"
                   b"jwt_alg = HS256\nsession_idle_s = 600\n",
        "quoted": b"listen: \"[::1]:5684\"\nmesh_bind 127.0.0.1\ndevices_file = '/etc/coapgw/devices.csv'\n"
                  b"meshsim = auto\nobs_notify_con = off\n",
        "bad_range": b"max_message = 2000\n",
        "bad_key": b"no_such_key = 1\n",
        "bad_power": b"ring_slots = 1000\n",
        "bad_line": b"justakey\n",
        "long_value": b"names = " + b"n" * 300 + b"\n",
        "frontends_over_max": b"frontends = 12\nmax_frontends = 4\njwt_alg = RS256\n",
    }


# ---- fuzz_frontend: records -------------------------------------------------

EP0, EP1, EP2, EP3 = 0, 1, 2, 3  # alice (netmgr), bob (none, 0011*), nobody, carol (single)
DEV = "0011223344556677"
MILLI = "00112233445566aa"


def dgram(ep, data):
    return bytes([0, ep]) + struct.pack("<H", len(data)) + data


def answer(sel, data, flags=0, aux=0, ctype=CON, token=b""):
    return bytes([1, sel, flags, aux, ctype, len(token)]) + token + struct.pack("<H", len(data)) + data


def clock(v):
    return bytes([2]) + struct.pack("<H", v)


TIMER = bytes([3])
SWEEP = bytes([4])


def proxy(ep, mid, uri, mtype=CON, mcode=GET, opts=(), payload=b"", tok=b"cl"):
    return dgram(ep, coap(mtype, mcode, mid, tok, [(PROXY_URI, uri.encode())] + list(opts), payload))


def seeds_frontend():
    tok = jwt(GOOD)
    big = b"0123456789abcdef" * 40  # 640 bytes: Block2 slices for szx 2
    return {
        "local_core": dgram(EP2, coap(CON, GET, 1, b"a", path(".well-known/core"))),
        "local_misc": dgram(EP2, coap(NON, GET, 2, b"b", path("help"), b"")) +
                      dgram(EP2, coap(CON, PUT, 3, b"c", path("echo") + [(CONTENT_FORMAT, b"")], b"ping")) +
                      dgram(EP2, coap(CON, GET, 4, b"d", path("nothing/here"))) +
                      dgram(EP2, coap(CON, GET, 5, b"e", path("echo") + [(2049, b"x")])),
        "session_then_proxy": dgram(EP2, coap(CON, POST, 10, b"s1", path("sessions") + [(URI_QUERY, b"sticky=false"),
                                                                                         (URI_QUERY, b"security=none")],
                                              tok)) +
                              proxy(EP2, 11, "coap://%s/temp" % DEV) +
                              dgram(EP2, coap(CON, GET, 12, b"s2", path("sessions"))) +
                              dgram(EP2, coap(CON, GET, 13, b"s3", path("devices"))) +
                              dgram(EP2, coap(CON, DELETE, 14, b"s4", path("sessions"))),
        "session_bad_token": dgram(EP2, coap(CON, POST, 20, b"x", path("sessions") + [(URI_QUERY, b"single=maybe")],
                                             tok)) +
                             dgram(EP2, coap(CON, POST, 21, b"y", path("sessions"), b"a.b.c")) +
                             dgram(EP3, coap(CON, POST, 22, b"z", path("sessions") + [(URI_QUERY, b"single")], tok)),
        "proxy_paths": proxy(EP0, 30, "coap://%s/temp?unit=C" % DEV) +
                       proxy(EP0, 31, "coap://%s:5683/temp" % DEV) +
                       proxy(EP0, 32, "coap://ffffffffffffffff/x") +
                       proxy(EP1, 33, "coap://0200000000000001/x") +
                       proxy(EP0, 34, "coap://%s/obs" % MILLI, opts=[(OBSERVE, b"")]) +
                       proxy(EP0, 35, "coap://%s/x" % DEV, mtype=NON, opts=[(NO_RESPONSE, uint(26))]) +
                       proxy(EP2, 36, "coap://%s/x" % DEV) +
                       proxy(EP0, 37, "coap://%s/x" % DEV, opts=[(BLOCK1, block(0, True, 2))]) +
                       proxy(EP0, 38, "https://%s/x" % DEV) +
                       proxy(EP0, 39, "coap://gw.example/echo", mcode=POST, payload=b"self"),
        "proxy_scheme": dgram(EP0, coap(CON, GET, 40, b"ps", [(PROXY_SCHEME, b"coap"), (URI_HOST, DEV.encode()),
                                                            (URI_PORT, uint(4849))] + path("a/b") +
                                        [(URI_QUERY, b"k=v")])),
        "block2_proxy": proxy(EP0, 50, "coap://%s/big" % DEV, opts=[(BLOCK2, block(0, False, 2))]) +
                        answer(0x80, coap(ACK, code(2, 5), 0, b"cl", [(CONTENT_FORMAT, b"")], big)) +
                        proxy(EP0, 51, "coap://%s/big" % DEV, opts=[(BLOCK2, block(1, False, 2))]) +
                        proxy(EP0, 52, "coap://%s/big" % DEV, opts=[(BLOCK2, block(99, False, 2))]),
        "block1_echo": dgram(EP2, coap(CON, POST, 60, b"b1", path("echo") + [(BLOCK1, block(0, True, 0))], b"A" * 16)) +
                       dgram(EP2, coap(CON, POST, 61, b"b1", path("echo") + [(BLOCK1, block(1, True, 0))], b"B" * 16)) +
                       dgram(EP2, coap(CON, POST, 62, b"b1", path("echo") + [(BLOCK1, block(2, False, 0))], b"C")) +
                       dgram(EP2, coap(CON, GET, 63, b"b2", path(".well-known/core") + [(BLOCK2, block(1, False, 0))])),
        "message_layer": dgram(EP2, coap(CON, GET, 70, b"m", path("help"))) +
                         dgram(EP2, coap(CON, GET, 70, b"m", path("help"))) +
                         dgram(EP2, coap(CON, 0, 71)) +
                         dgram(EP2, coap(CON, code(2, 5), 72, b"r")) +
                         dgram(EP2, b"\x40\x01\x00") +
                         dgram(EP2, b"\x80\x01\x00\x01") +
                         dgram(EP2, b"\x4f\x01\x00\x02") +
                         dgram(EP2, coap(CON, POST, 73, b"big", path("echo"), b"z" * 1200)),
        "notify_and_ack": proxy(EP0, 80, "coap://%s/obs" % DEV, opts=[(OBSERVE, b"")]) +
                          answer(0x80, coap(CON, code(2, 5), 0, b"cl", [(OBSERVE, uint(3))], b"1"), flags=0x04) +
                          answer(0x80, coap(CON, code(2, 5), 0, b"cl", [(OBSERVE, uint(4))], b"2"), flags=0x04) +
                          dgram(EP0, coap(ACK, 0, 0x4001)) +
                          clock(300) + TIMER + clock(600) + TIMER + clock(2000) + TIMER +
                          dgram(EP0, coap(RST, 0, 0x4000)),
        "expiry": clock(0xffff) + SWEEP + proxy(EP0, 90, "coap://%s/temp" % DEV) +
                  dgram(EP1, coap(CON, GET, 91, b"d", path("devices"))),
    }


# ---- fuzz_scheduler: records -----------------------------------------------

def s_req(dev, body, sec=0, non=False, tkl=2, ep=0, session=0, b2=0):
    b = sec | (1 if non else 0) << 1 | tkl << 2
    return bytes([0, dev, b, ep, session, b2]) + struct.pack("<H", len(body)) + body


def s_body(mcode, opts=(), payload=b""):
    # The scheduler harness puts a CON header, MID 0 and the zero token first.
    return bytes([mcode]) + coap(CON, mcode, 0, b"", list(opts), payload)[4:]


def s_answer(which, mtype, mcode, rest=b"", tok=0):
    return bytes([2, which, mtype, mcode, tok]) + struct.pack("<H", len(rest)) + rest


def s_rest(opts=(), payload=b""):
    return coap(ACK, 0, 0, b"", list(opts), payload)[4:]


def s_raw(dev, data, sec=0):
    return bytes([1, dev, sec]) + struct.pack("<H", len(data)) + data


def s_clock(v):
    return bytes([5]) + struct.pack("<H", v)


def seeds_scheduler():
    temp = s_body(GET, path("temp"))
    obs = s_body(GET, [(OBSERVE, b"")] + path("temp"))
    content = s_rest([(MAX_AGE, uint(30)), (ETAG, b"e1")], b"21.5")
    return {
        "get_answer": s_req(0, temp) + s_answer(0, ACK, code(2, 5), content) + s_req(0, temp, ep=1),
        "separate": s_req(1, temp) + s_answer(0, ACK, 0, b"", 0) + s_answer(0, CON, code(2, 5), content, 3),
        "retries": s_req(0, s_body(PUT, path("cfg"), b"v=1")) + s_clock(400) + s_clock(800) + s_clock(2000) +
                   s_clock(0xffff),
        "milli_busy": s_req(2, temp) + s_req(2, temp, ep=1) + s_clock(0xffff) + s_req(2, temp, ep=2),
        "unknown_device": s_req(3, temp),
        "observe": s_req(0, obs) + s_answer(0, ACK, code(2, 5), s_rest([(OBSERVE, uint(5))], b"20")) +
                   s_req(0, obs, ep=1, tkl=3) +
                   s_answer(0, NON, code(2, 5), s_rest([(OBSERVE, uint(6))], b"21"), 1) +
                   bytes([3, 0, 2]) + bytes([4, 1]) + s_clock(1000) + bytes([0x86]),
        "restart": s_req(0, temp) + s_req(1, temp, non=True) + bytes([6]) + s_answer(1, ACK, code(4, 4), b"") +
                   bytes([7]) + s_answer(0, RST, 0) + bytes([7]),
        "raw_mesh": s_raw(0, coap(CON, code(2, 5), 0x99, b"\x01" * 8, [], b"x")) +
                    s_raw(1, b"\x40\x00\x00") + s_raw(0, coap(NON, GET, 1, b"", path("x")), sec=1),
        "cache_block2": s_req(0, temp, b2=0x82) + s_answer(0, ACK, code(2, 5), s_rest([], b"y" * 200)) +
                        s_req(0, temp, ep=2, b2=0x81) + s_req(0, s_body(POST, path("temp"), b"reset")),
    }


def main():
    targets = {
        "coap": seeds_coap, "route": seeds_route, "jwt": seeds_jwt, "msg": seeds_msg,
        "mesh_frame": seeds_mesh_frame, "devfile": seeds_devfile, "config": seeds_config,
        "frontend": seeds_frontend, "scheduler": seeds_scheduler,
    }
    only = set(sys.argv[1:])
    for name, fn in targets.items():
        if only and name not in only:
            continue
        seeds = fn()
        write(name, seeds)
        print("%-11s %2d seeds, %6d bytes" % (name, len(seeds), sum(len(v) for v in seeds.values())))


if __name__ == "__main__":
    main()
