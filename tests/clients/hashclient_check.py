"""Client-side consistent hashing over several memcached-protocol servers.

Usage: python3 hashclient_check.py PORT [PORT ...]

pymemcache's HashClient spreads 1,000 keys over the servers on 127.0.0.1
(rendezvous hashing: each key goes to one server, chosen by the client),
reads every key back one by one and in multi-gets, exercises the other
commands on a few scratch keys (removed again), and prints one JSON line:
{"keys": {"127.0.0.1:PORT": [keys the client placed there], ...}}
so that the caller can check, through each server's own statistics, that
the keys are where the client says. Exits non-zero, naming the failed
check, if any answer is wrong or any server was marked failed.
"""
import json
import sys

from pymemcache.client.hash import HashClient

KEYS = 1000


def check(what, got, want):
    if got != want:
        sys.exit(f"{what}: got {got!r}, want {want!r}")


def key(i):
    return f"hash:{i:04}"


def value(i):
    # Lengths from 1 to ~3 KB, each value naming its key.
    return (f"{key(i)}=" * (1 + i * 37 % 300)).encode()[: 1 + i * 37 % 3000]


def main():
    servers = [("127.0.0.1", int(p)) for p in sys.argv[1:]]
    if len(servers) < 2:
        sys.exit("usage: hashclient_check.py PORT PORT [PORT ...]")
    # retry_attempts=0 and ignore_exc=False: the first socket error raises
    # instead of silently moving keys to another server.
    c = HashClient(
        servers,
        connect_timeout=5,
        timeout=5,
        retry_attempts=0,
        ignore_exc=False,
        default_noreply=False,
    )
    keys = [key(i) for i in range(KEYS)]
    want = {k: value(i) for i, k in enumerate(keys)}

    # Three ways of writing: set_many (one pipelined batch per server),
    # single sets that wait for STORED, and single noreply sets.
    first = {k: want[k] for k in keys[:500]}
    check("set_many", c.set_many(first, noreply=False), [])
    for k in keys[500:750]:
        check(f"set {k}", c.set(k, want[k], noreply=False), True)
    for k in keys[750:]:
        c.set(k, want[k], noreply=True)

    for k in keys:
        check(f"get {k}", c.get(k), want[k])
    for start in range(0, KEYS, 20):
        chunk = keys[start : start + 20] + [f"missing:{start}"]
        check(
            f"get_many {start}..",
            c.get_many(chunk),
            {k: want[k] for k in keys[start : start + 20]},
        )
    check("get_many all", c.get_many(keys), want)
    gets = c.gets_many(keys[:50])
    check(
        "gets_many values",
        {k: v for k, (v, _) in gets.items()},
        {k: want[k] for k in keys[:50]},
    )

    # The other commands, on scratch keys that are removed again.
    check("add new", c.add("scratch:n", b"10", noreply=False), True)
    check("add existing", c.add("scratch:n", b"11", noreply=False), False)
    check("incr", c.incr("scratch:n", 5), 15)
    check("decr", c.decr("scratch:n", 100), 0)
    check("incr missing", c.incr("scratch:missing", 1), None)
    check("append", c.append("scratch:n", b"x", noreply=False), True)
    check("prepend", c.prepend("scratch:n", b"y", noreply=False), True)
    got = c.get("scratch:n")
    # memcached keeps a decremented number's length, padding with spaces.
    check("after append/prepend", got.startswith(b"y0") and got.endswith(b"x"), True)
    check("replace", c.replace("scratch:n", b"r", noreply=False), True)
    check("replace missing", c.replace("scratch:missing", b"r", noreply=False), False)
    check("touch", c.touch("scratch:n", 100, noreply=False), True)
    v, cas = c.gets("scratch:n")
    check("gets", v, b"r")
    check("cas ok", c.cas("scratch:n", b"c", cas, noreply=False), True)
    check("cas stale", c.cas("scratch:n", b"d", cas, noreply=False), False)
    check("delete", c.delete("scratch:n", noreply=False), True)
    check("delete again", c.delete("scratch:n", noreply=False), False)
    c.set("scratch:q", b"q", noreply=True)
    check("noreply set", c.get("scratch:q"), b"q")
    c.delete("scratch:q", noreply=True)
    check("noreply delete", c.get("scratch:q"), None)

    check("failed servers", dict(c._failed_clients), {})
    placed = {}
    for k in keys:
        server = c._get_client(k).server
        placed.setdefault(f"{server[0]}:{server[1]}", []).append(k)
    c.close()
    print(json.dumps({"keys": placed}))


if __name__ == "__main__":
    main()
