"""The request journal: one JSON line per AWS request, appended as the response starts."""

from __future__ import annotations

import json
import threading
import time


class Journal:
    def __init__(self, path: str | None):
        self.path = path
        self._lock = threading.Lock()
        self._fh = open(path, "a", buffering=1, encoding="utf-8") if path else None

    def record(self, service: str | None, operation: str | None, mutating: bool, status: int,
               **extra: object) -> dict:
        entry = {
            "ts": round(time.time(), 6),
            "service": service,
            "operation": operation,
            "mutating": mutating,
            "status": status,
        }
        entry.update(extra)
        if self._fh:
            line = json.dumps(entry, separators=(",", ":")) + "\n"
            with self._lock:
                self._fh.write(line)
                self._fh.flush()
        return entry
