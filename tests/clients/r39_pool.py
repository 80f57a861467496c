#!/usr/bin/python3
"""Red team r39: a program that tries to reach --dns proxy's fake addresses around socksify.

usage: r39_pool.py NAME

Resolves NAME (a fake address, 100.64.x.y), then, printing each outcome:
  udp-sendto      sendto() the fake address from an IPv4 UDP socket
  udp-sendmsg     sendmsg() the same
  udp6-mapped     sendto() ::ffff:<fake> from an IPv6 UDP socket
  tcp6-unnamed    connect() ::ffff:100.64.200.7 (a pool address never handed out)
  tcp6-pool       connect() fd7a:736f:636b:1::9 (the pool's IPv6 prefix, no name)
"""

import socket
import sys


def attempt(label, fn):
    try:
        fn()
        print("%s: done" % label, flush=True)
    except OSError as e:
        print("%s: errno %d" % (label, e.errno), flush=True)


def main():
    fake = socket.gethostbyname(sys.argv[1])
    print("resolved %s: %s" % (sys.argv[1], fake), flush=True)
    u4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    attempt("udp-sendto", lambda: u4.sendto(b"x", (fake, 9999)))
    attempt("udp-sendmsg", lambda: u4.sendmsg([b"x"], [], 0, (fake, 9998)))
    u6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    attempt("udp6-mapped", lambda: u6.sendto(b"x", ("::ffff:" + fake, 9997)))
    for label, dst in (("tcp6-unnamed", "::ffff:100.64.200.7"), ("tcp6-pool", "fd7a:736f:636b:1::9")):
        t = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        t.settimeout(3)
        attempt(label, lambda: t.connect((dst, 80)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
