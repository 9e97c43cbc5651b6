"""pymemcache's gat/gats path with the TTL read back by `mg <key> t`, the
way pymemcache's own integration test `test_gat_gats` checks it: a set with
a 10 s TTL, gat and gats to 1000 s, and the TTL before and after, on a
Client, a Client with a key prefix and a HashClient.

pymemcache releases up to 4.0.0 (the newest on PyPI) have no gat/gats
methods; with those, the same `gat`/`gats` lines are sent on a socket.

Usage: python3 pymemcache_gat_check.py PORT
Exits non-zero, naming the failed check, if any answer is wrong.
"""
import socket
import sys

from pymemcache.client.base import Client
from pymemcache.client.hash import HashClient


def fail(what):
    sys.exit(what)


def raw(port, line):
    """Sends one request line and reads its reply up to `END` or one line."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(line + b"\r\n")
        reply = b""
        while not (reply.endswith(b"END\r\n") or (reply.endswith(b"\r\n") and not reply.startswith(b"VALUE"))):
            chunk = s.recv(4096)
            if not chunk:
                break
            reply += chunk
    return reply


def ttl(port, key):
    """The TTL left, read as test_gat_gats does: `mg <key> t`."""
    reply = raw(port, b"mg " + key + b" t")
    if not (reply.startswith(b"HD t") and reply.endswith(b"\r\n")):
        fail(f"mg {key!r} t: got {reply!r}")
    return int(reply[len(b"HD t"):-2])


def gat(client, port, prefix, with_cas):
    """client.gat/gats of `key` where pymemcache has them, else the same
    line raw (with the key prefix the client would add)."""
    name = "gats" if with_cas else "gat"
    if hasattr(client, name):
        result = getattr(client, name)(b"key", expire=1000)
        return result[0] if with_cas else result
    key = prefix + b"key"
    reply = raw(port, name.encode() + b" 1000 " + key)
    lines = reply.split(b"\r\n")
    if len(lines) < 3 or not lines[0].startswith(b"VALUE " + key + b" "):
        fail(f"{name} {key!r}: got {reply!r}")
    return lines[1]


def check_gat_gats(label, client, port, prefix):
    client.flush_all()
    if client.set(b"key", b"0", 10, noreply=False) is not True:
        fail(f"{label}: set failed")
    key = prefix + b"key"
    ttl1 = ttl(port, key)
    for with_cas in (False, True):
        value = gat(client, port, prefix, with_cas)
        if value != b"0":
            fail(f"{label}: {'gats' if with_cas else 'gat'} got {value!r}")
    ttl2 = ttl(port, key)
    if not ttl1 < 950 < ttl2 <= 1000:
        fail(f"{label}: TTL {ttl1} before gat, {ttl2} after; want < 950 < TTL <= 1000")
    if raw(port, b"mg " + prefix + b"missing t") != b"EN\r\n":
        fail(f"{label}: mg of a missing key is not EN")


def main():
    port = int(sys.argv[1])
    addr = ("127.0.0.1", port)
    check_gat_gats("Client", Client(addr, connect_timeout=5, timeout=5), port, b"")
    check_gat_gats(
        "Client with key prefix",
        Client(addr, connect_timeout=5, timeout=5, key_prefix=b"pfx:"),
        port,
        b"pfx:",
    )
    check_gat_gats("HashClient", HashClient([addr], connect_timeout=5, timeout=5), port, b"")
    print("pymemcache gat/gats with mg t: all checks passed")


if __name__ == "__main__":
    main()
