"""Drives a memcached-protocol server with pymemcache and checks every answer.

Usage: python3 pymemcache_check.py PORT
Exits non-zero, naming the failed check, if any answer is wrong.
"""
import sys

from pymemcache.client.base import Client
from pymemcache.client.hash import HashClient


def check(what, got, want):
    if got != want:
        sys.exit(f"{what}: got {got!r}, want {want!r}")


def main():
    port = int(sys.argv[1])
    c = Client(("127.0.0.1", port), connect_timeout=5, timeout=5)
    c.flush_all()
    check("set", c.set("a", b"1", noreply=False), True)
    check("get", c.get("a"), b"1")
    check("get missing", c.get("missing"), None)
    check("add existing", c.add("a", b"2", noreply=False), False)
    check("add new", c.add("b", b"2", noreply=False), True)
    check("replace", c.replace("b", b"3", noreply=False), True)
    check("replace missing", c.replace("zz", b"3", noreply=False), False)
    check("append", c.append("b", b"4", noreply=False), True)
    check("prepend", c.prepend("b", b"2", noreply=False), True)
    check("get_many", c.get_many(["a", "b", "missing"]), {"a": b"1", "b": b"234"})
    value, cas = c.gets("a")
    check("gets", value, b"1")
    check("cas ok", c.cas("a", b"5", cas, noreply=False), True)
    check("cas stale", c.cas("a", b"6", cas, noreply=False), False)
    check("cas missing", c.cas("nokey", b"6", cas, noreply=False), None)
    check("incr", c.incr("a", 10), 15)
    check("decr", c.decr("a", 100), 0)
    check("incr missing", c.incr("missing", 1), None)
    check("touch", c.touch("a", 100, noreply=False), True)
    check("touch missing", c.touch("missing", 100, noreply=False), False)
    check("delete", c.delete("a", noreply=False), True)
    check("delete missing", c.delete("a", noreply=False), False)
    c.set("quiet", b"x")  # noreply, pymemcache's default
    check("noreply set", c.get("quiet"), b"x")
    check("binary value", (c.set("bin", b"\r\n\x00\xff", noreply=False), c.get("bin")), (True, b"\r\n\x00\xff"))
    stats = c.stats()
    for field in (b"curr_items", b"cmd_get", b"get_hits", b"threads", b"pattern"):
        if field not in stats:
            sys.exit(f"stats lacks {field!r}")
    c.stats("settings")
    c.stats("items")
    c.stats("slabs")
    check("version", c.version().startswith(b"1.6."), True)
    check("flush_all", c.flush_all(noreply=False), True)
    check("after flush", c.get("b"), None)
    many = {f"k{i}": str(i).encode() for i in range(500)}
    check("set_many", c.set_many(many, noreply=False), [])
    check("get_many 500", c.get_many(list(many)), many)
    c.close()

    h = HashClient([("127.0.0.1", port)], connect_timeout=5, timeout=5)
    check("hash set", h.set("hk", b"v", noreply=False), True)
    check("hash get", h.get("hk"), b"v")
    h.close()
    print("pymemcache: all checks passed")


if __name__ == "__main__":
    main()
