#!/usr/bin/python3
"""Red team r37: a SOCKS client written to get past sockstrace's SOCKS inspector.

usage: r37_socks.py MODE PROXY_HOST PROXY_PORT TARGET_HOST TARGET_PORT [NAME]

MODE:
  s5lit      resolve NAME itself (a DNS query), then a SOCKS5 CONNECT whose
             *domain* field (ATYP 3) is the dotted address TARGET_HOST
  s4alit     resolve NAME itself, then a SOCKS4a request whose host name is
             the dotted address TARGET_HOST
  s5offer    SOCKS5 greeting offering username/password *and* no
             authentication; whatever the proxy picks, a CONNECT by name
  s4anoauth  SOCKS4a by name (TARGET_HOST) with an empty user id
  http       HTTP CONNECT TARGET_HOST:TARGET_PORT to the proxy
  forkfake   a child process resolves NAME (the answer goes through a pipe);
             the parent asks the proxy for that address (SOCKS5, ATYP 1)
  direct     a plain TCP connect to TARGET_HOST:TARGET_PORT
  gssapi     SOCKS5 greeting offering GSSAPI only; whatever the proxy picks,
             a CONNECT by address (ATYP 1) as if the method wrapped nothing
  authfail   SOCKS5 username/password; whatever the proxy answers, a CONNECT
             by address (ATYP 1) on the same connection

Prints "status: <first line of the HTTP answer>" when the request got through,
"refused: ..." or "failed: ..." otherwise. Exit 0 when it got through.
"""

import os
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


def s5_connect_domain(s, host, port):
    req = bytes([5, 1, 0, 3, len(host)]) + host.encode() + struct.pack(">H", port)
    s.sendall(req)
    return s5_reply(s)


def main():
    mode, phost, pport, thost, tport = sys.argv[1:6]
    pport, tport = int(pport), int(tport)
    name = sys.argv[6] if len(sys.argv) > 6 else None
    if mode == "direct":
        s = socket.create_connection((thost, tport), timeout=10)
        print("connected", flush=True)
        return 0
    if mode in ("s5lit", "s4alit") and name:
        print("resolved %s: %s" % (name, socket.gethostbyname(name)), flush=True)
    if mode == "forkfake":
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            os.write(w, socket.gethostbyname(name).encode())
            os._exit(0)
        os.close(w)
        os.waitpid(pid, 0)
        thost = os.read(r, 100).decode()
        print("the child resolved %s: %s" % (name, thost), flush=True)
    s = socket.create_connection((phost, pport), timeout=10)
    if mode in ("s5split", "s5pipe"):
        user = (name or "shared").encode()
        msg = bytes([5, 1, 2]) + bytes([1, len(user)]) + user + bytes([2]) + b"pw"
        msg += bytes([5, 1, 0, 3, len(thost)]) + thost.encode() + struct.pack(">H", tport)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if mode == "s5pipe":
            s.sendall(msg)
        else:
            import time
            for b in msg:
                s.sendall(bytes([b]))
                time.sleep(0.005)
        recv_exact(s, 2)
        status = recv_exact(s, 2)
        print("auth status %d" % status[1], flush=True)
        if status[1] != 0 or not s5_reply(s):
            return 1
        return http_get(s, thost)
    if mode in ("gssapi", "authfail"):
        s.sendall(bytes([5, 1, 1 if mode == "gssapi" else 2]))
        chosen = recv_exact(s, 2)[1]
        print("the proxy chose method %d" % chosen, flush=True)
        if mode == "authfail":
            s.sendall(bytes([1, 4]) + b"user" + bytes([2]) + b"pw")
            print("auth status %d" % recv_exact(s, 2)[1], flush=True)
        # As if the proxy read on: a request by address.
        s.sendall(bytes([5, 1, 0, 1]) + socket.inet_aton(thost) + struct.pack(">H", tport))
        if not s5_reply(s):
            return 1
        print("granted", flush=True)
        return http_get(s, thost)
    if mode in ("s5lit", "s5offer", "forkfake"):
        s.sendall(bytes([5, 2, 0, 2]) if mode == "s5offer" else bytes([5, 1, 0]))
        chosen = recv_exact(s, 2)[1]
        print("the proxy chose method %d" % chosen, flush=True)
        if chosen == 2:
            s.sendall(bytes([1, 4]) + b"user" + bytes([2]) + b"pw")
            recv_exact(s, 2)
        elif chosen != 0:
            print("refused: no method", flush=True)
            return 1
        if mode == "forkfake":
            req = bytes([5, 1, 0, 1]) + socket.inet_aton(thost) + struct.pack(">H", tport)
            s.sendall(req)
            ok = s5_reply(s)
        else:
            ok = s5_connect_domain(s, thost, tport)
        if not ok:
            return 1
        print("granted", flush=True)
        if mode == "forkfake":
            return 0
        return http_get(s, thost)
    if mode in ("s4alit", "s4anoauth"):
        req = bytes([4, 1]) + struct.pack(">H", tport) + bytes([0, 0, 0, 1]) + b"\0" + thost.encode() + b"\0"
        s.sendall(req)
        reply = recv_exact(s, 8)
        print("socks4 reply %d" % reply[1], flush=True)
        if reply[1] != 90:
            return 1
        return http_get(s, thost)
    if mode == "http":
        s.sendall(("CONNECT %s:%d HTTP/1.1\r\nHost: %s:%d\r\n\r\n" % (thost, tport, thost, tport)).encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(1)
            if not chunk:
                break
            data += chunk
        print("http proxy answered: %r" % data.split(b"\r\n", 1)[0], flush=True)
        if b" 200 " not in data.split(b"\r\n", 1)[0]:
            return 1
        return http_get(s, thost)
    print("unknown mode", flush=True)
    return 2


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:  # noqa: BLE001
        print("failed: %r" % (e,), flush=True)
        sys.exit(1)
