"""Authenticates with pymemcache to a server started with `-Y` on a file
holding alice:secret, and checks every answer.

pymemcache has no authentication of its own: memcached's handshake is a
`set` whose value is `<user> <password>`, sent first on a connection. It
must not be `noreply` (pymemcache's default): the server answers it all the
same, and the answer would be read as the next command's.

Usage: python3 pymemcache_auth_check.py PORT
Exits non-zero, naming the failed check, if any answer is wrong.
"""
import sys

from pymemcache.client.base import Client
from pymemcache.exceptions import MemcacheClientError


def check(what, got, want):
    if got != want:
        sys.exit(f"{what}: got {got!r}, want {want!r}")


def refused(what, call, message):
    try:
        got = call()
    except MemcacheClientError as e:
        check(what, str(e), message)
        return
    sys.exit(f"{what}: got {got!r}, want CLIENT_ERROR {message}")


def main():
    port = int(sys.argv[1])
    c = Client(("127.0.0.1", port), connect_timeout=5, timeout=5)
    # pymemcache closes the connection after an error, and opens a new
    # one, unauthenticated, for the next command.
    refused("get before auth", lambda: c.get("k"), "b'unauthenticated'")
    refused(
        "wrong password",
        lambda: c.set("auth", b"alice wrong", noreply=False),
        "b'authentication failure'",
    )
    check("handshake", c.set("auth", b"alice secret", noreply=False), True)
    check("set", c.set("k", b"v", noreply=False), True)
    check("get", c.get("k"), b"v")
    check("incr", c.incr("n", 1, noreply=False), None)
    check("add", c.add("n", b"1", noreply=False), True)
    check("incr", c.incr("n", 1, noreply=False), 2)
    check("delete", c.delete("k", noreply=False), True)
    check("get deleted", c.get("k"), None)
    # A second client is a second connection: it must authenticate too.
    other = Client(("127.0.0.1", port), connect_timeout=5, timeout=5)
    refused("other before auth", lambda: other.get("n"), "b'unauthenticated'")
    check("other handshake", other.set("x", b"bob hunter2", noreply=False), True)
    check("other get", other.get("n"), b"2")
    c.close()
    other.close()


if __name__ == "__main__":
    main()
