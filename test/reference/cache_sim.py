#!/usr/bin/env python3
"""Textbook cache simulators, written apart from the TypeScript replay on purpose, to check it.

usage: cache_sim.py TRACE.csv SLOTS [SLOTS ...]
prints one JSON object: {"<slots>": {"lru": hits, "belady": hits}, ...}

LRU: an OrderedDict in access order; a miss with a full cache evicts the least recently used.
Belady (MIN): a miss with a full cache evicts the held key whose next request is furthest in the
future, keys never requested again first. Next requests are found by binary search in each key's
list of positions: a different method from the replay's backward pass.
"""
import bisect
import csv
import json
import sys
from collections import OrderedDict


def read(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return [r[2] for r in rows[1:] if r]


def lru(keys, slots):
    cache, hits = OrderedDict(), 0
    for k in keys:
        if k in cache:
            hits += 1
            cache.move_to_end(k)
        else:
            if len(cache) >= slots:
                cache.popitem(last=False)
            cache[k] = True
    return hits


def belady(keys, slots):
    positions = {}
    for i, k in enumerate(keys):
        positions.setdefault(k, []).append(i)

    def next_use(k, i):
        p = positions[k]
        j = bisect.bisect_right(p, i)
        return p[j] if j < len(p) else float("inf")

    cache, hits = set(), 0
    for i, k in enumerate(keys):
        if k in cache:
            hits += 1
            continue
        if len(cache) >= slots:
            victim = max(cache, key=lambda c: next_use(c, i))
            cache.remove(victim)
        cache.add(k)
    return hits


if __name__ == "__main__":
    keys = read(sys.argv[1])
    out = {s: {"lru": lru(keys, int(s)), "belady": belady(keys, int(s))} for s in sys.argv[2:]}
    print(json.dumps(out))
