"""A dict standing in for the worker's shared-memory segment cache (get/put by key)."""

from __future__ import annotations


class DictCache:
    def __init__(self):
        self.entries = {}

    def get(self, key):
        return self.entries.get(key)

    def put(self, key, value):
        self.entries[key] = value
