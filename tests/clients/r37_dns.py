#!/usr/bin/python3
"""Red team r37: a client of sockstrace's own resolver (--dns proxy) written to break it.

usage: r37_dns.py abuse
       r37_dns.py flood SINK_HOST:SINK_PORT

abuse: the resolver named in /etc/resolv.conf gets truncated, compression-loop,
oversize, EDNS, ANY/PTR/SRV/HTTPS/AXFR queries over UDP and TCP, a half TCP
frame, then an ordinary query; prints "still answers: ADDR" when it does, and
"non-pool address: ..." for any A/AAAA record outside the fake pool.

flood: 400 UDP queries and 80 TCP connections with a query each (the upstream
never answers), then a TCP connect to SINK (a leak). Prints "flooded" first.
"""

import random
import socket
import struct
import sys


def resolver():
    for line in open("/etc/resolv.conf"):
        parts = line.split()
        if parts and parts[0] == "nameserver":
            return parts[1]
    raise SystemExit("no nameserver")


def qname(name):
    out = b""
    for label in name.split("."):
        if label:
            out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def query(qid, name, qtype, edns=None, raw_name=None):
    head = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 1 if edns else 0)
    body = (raw_name if raw_name is not None else qname(name)) + struct.pack(">HH", qtype, 1)
    if edns:
        body += b"\0" + struct.pack(">HHIH", 41, edns, 0, 0)
    return head + body


def records(reply):
    """(type, rdata) of the answer section, skipping names by their encoding."""
    def skip(at):
        while True:
            n = reply[at]
            if n == 0:
                return at + 1
            if n & 0xC0 == 0xC0:
                return at + 2
            at += 1 + n

    qd, an = struct.unpack(">HH", reply[4:8])
    at = 12
    for _ in range(qd):
        at = skip(at) + 4
    out = []
    for _ in range(an):
        at = skip(at)
        rtype, _, _, rdlen = struct.unpack(">HHIH", reply[at:at + 10])
        at += 10
        out.append((rtype, reply[at:at + rdlen]))
        at += rdlen
    return out


def check_addresses(reply):
    for rtype, rdata in records(reply):
        if rtype == 1:
            ip = socket.inet_ntop(socket.AF_INET, rdata)
            if not ip.startswith("100.") or not (64 <= int(ip.split(".")[1]) < 128):
                if ip not in ("127.0.0.1",):
                    print("non-pool address: " + ip, flush=True)
        elif rtype == 28:
            ip = socket.inet_ntop(socket.AF_INET6, rdata)
            if not ip.startswith("fd7a:736f:636b:") and ip != "::1":
                print("non-pool address: " + ip, flush=True)


def udp_ask(server, packet, timeout=2.0):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    s.sendto(packet, (server, 53))
    try:
        reply = s.recv(65535)
    except socket.timeout:
        return None
    finally:
        s.close()
    check_addresses(reply) if len(reply) >= 12 else None
    return reply


def tcp_ask(server, packets, half=False):
    s = socket.create_connection((server, 53), timeout=5)
    for p in packets:
        s.sendall(struct.pack(">H", len(p)) + p)
    if half:
        s.sendall(b"\x01\x00" + b"\x12\x34")  # a frame of 256 that never comes
    replies = []
    try:
        for _ in packets:
            n = struct.unpack(">H", s.recv(2, socket.MSG_WAITALL))[0]
            r = s.recv(n, socket.MSG_WAITALL)
            check_addresses(r)
            replies.append(r)
    except (socket.timeout, struct.error):
        pass
    return s, replies


def abuse():
    server = resolver()
    rnd = random.Random(37)
    ok = query(1, "example.com", 1)
    bad = [
        ok[:-3],  # cut into the question
        ok[:12],
        b"\xff" * 11,
        query(2, "", 1, raw_name=b"\xc0\x0c"),  # a pointer to itself
        query(3, "", 1, raw_name=b"\x03abc\xc0\x0c"),  # a loop through the header
        query(4, "a" * 63 + "." + "b" * 63 + "." + "c" * 63 + "." + "d" * 61, 1),
        query(5, "example.com", 255, edns=65535),  # ANY, the biggest EDNS size
        query(6, "example.com", 252),  # AXFR
        query(7, "1.0.64.100.in-addr.arpa", 12),  # PTR of a pool address
        query(8, "4.3.2.1.in-addr.arpa", 12),  # PTR of another
        query(9, "_x._tcp.example.com", 33),  # SRV
        query(10, "example.com", 65),  # HTTPS
        query(11, "example.com", 28, edns=512),
        ok + b"\0" * 60000,  # oversize, trailing garbage
    ]
    bad += [bytes(rnd.getrandbits(8) for _ in range(rnd.randrange(0, 600))) for _ in range(300)]
    for p in bad:
        udp_ask(server, p, timeout=0.2)
    s, replies = tcp_ask(server, [query(20 + i, "t%d.example.org" % i, 1) for i in range(20)], half=True)
    print("tcp replies: %d" % len(replies), flush=True)
    s.close()
    for p in bad[:14]:
        t = socket.create_connection((server, 53), timeout=5)
        if len(p) < 65536:
            t.sendall(struct.pack(">H", len(p)) + p)
        t.close()
    reply = udp_ask(server, query(99, "still.example.net", 1))
    if reply is None:
        print("no answer", flush=True)
        return 1
    addrs = [socket.inet_ntop(socket.AF_INET, d) for t, d in records(reply) if t == 1]
    print("still answers: %s" % ", ".join(addrs), flush=True)
    return 0


def flood(sink):
    server = resolver()
    socks = []
    for i in range(400):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.sendto(query(i, "f%d.example.com" % i, 1), (server, 53))
        socks.append(s)
    for i in range(80):
        try:
            t = socket.create_connection((server, 53), timeout=2)
            p = query(1000 + i, "t%d.example.com" % i, 1)
            t.sendall(struct.pack(">H", len(p)) + p)
            socks.append(t)
        except OSError as e:
            print("tcp %d: %r" % (i, e), flush=True)
    print("flooded", flush=True)
    host, port = sink.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=5)
        print("leak connected", flush=True)
    except OSError as e:
        print("leak refused: %r" % (e,), flush=True)
    return 0


def evict(count):
    """Resolves first.example, pushes it out of the fake pool with COUNT other
    names (a connected UDP socket: its sends are not trapped), then connects to
    the address first.example had."""
    server = resolver()
    first = socket.gethostbyname("first.example")
    print("first.example: " + first, flush=True)
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.connect((server, 53))
    u.settimeout(2)
    for i in range(count):
        u.send(query(i & 0xFFFF, "n%d.evict.example" % i, 1))
        try:
            u.recv(512)
        except socket.timeout:
            pass
    print("asked %d names" % count, flush=True)
    try:
        socket.create_connection((first, 80), timeout=5)
        print("connected to " + first, flush=True)
    except OSError as e:
        print("refused: %r" % (e,), flush=True)
    return 0


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "evict":
        sys.exit(evict(int(sys.argv[2])))
    sys.exit(abuse() if mode == "abuse" else flood(sys.argv[2]))
