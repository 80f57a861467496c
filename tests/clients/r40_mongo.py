#!/usr/bin/env python3
"""r40_mongo: a client of a binary protocol whose first message begins with its length, little
endian (MongoDB's wire protocol): a 261-byte first message begins 05 01 00 00, which reads as a
SOCKS5 greeting offering one method. Through a SOCKS5 proxy, by name (socks5h, clean), it sends
that message in the tunnel and reads the server's answer.

    r40_mongo.py PROXY_HOST PROXY_PORT NAME PORT
Prints "answer: ..." or "failed: ...".
"""
import socket
import struct
import sys


def main():
    phost, pport, name, port = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    try:
        s = socket.create_connection((phost, pport), timeout=20)
        s.sendall(b"\x05\x01\x00")
        if s.recv(2) != b"\x05\x00":
            raise OSError("greeting refused")
        host = name.encode()
        s.sendall(b"\x05\x01\x00\x03" + bytes([len(host)]) + host + struct.pack(">H", port))
        reply = s.recv(4)
        if len(reply) < 2 or reply[1] != 0:
            raise OSError("request refused: %r" % reply)
        rest = {1: 6, 4: 18}.get(reply[3], 0)
        if reply[3] == 3:
            rest = s.recv(1)[0] + 2
        s.recv(rest)
        body = b"\x00" * (261 - 4)
        s.sendall(struct.pack("<i", 261) + body)
        answer = s.recv(100)
        print("answer: %r" % answer, flush=True)
    except OSError as e:
        print("failed: %s" % e, flush=True)


main()
