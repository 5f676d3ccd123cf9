"""Queued fault injection: errors returned instead of calling moto, per operation."""

from __future__ import annotations

import threading
from typing import Any


class FaultError(ValueError):
    pass


class FaultQueue:
    """``{"operation": "CreateNodegroup", "code": "ThrottlingException", "status": 400,
    "times": 2, "message": "...", "service": "eks"}``; operation and code are required,
    status defaults to 400, times to 1, service to any."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[dict[str, Any]] = []

    @staticmethod
    def normalize(spec: Any) -> dict[str, Any]:
        if not isinstance(spec, dict):
            raise FaultError("a fault is a JSON object")
        if not spec.get("operation") or not spec.get("code"):
            raise FaultError("a fault needs 'operation' and 'code'")
        unknown = set(spec) - {"operation", "code", "status", "times", "message", "service"}
        if unknown:
            raise FaultError(f"unknown fault keys: {sorted(unknown)}")
        status = int(spec.get("status", 400))
        times = int(spec.get("times", 1))
        if not 400 <= status <= 599 or times < 1:
            raise FaultError("status must be 4xx/5xx and times >= 1")
        return {
            "operation": str(spec["operation"]),
            "code": str(spec["code"]),
            "status": status,
            "times": times,
            "message": str(spec.get("message") or f"Injected by the sandbox: {spec['code']}"),
            "service": spec.get("service"),
        }

    def add(self, spec: Any) -> list[dict[str, Any]]:
        specs = spec if isinstance(spec, list) else [spec]
        faults = [self.normalize(s) for s in specs]
        with self._lock:
            self._faults.extend(faults)
        return self.list()

    def clear(self) -> int:
        with self._lock:
            n = len(self._faults)
            self._faults.clear()
        return n

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(f) for f in self._faults]

    def take(self, service: str | None, operation: str | None) -> dict[str, Any] | None:
        """The first queued fault matching the request, consuming one of its ``times``."""
        if not operation:
            return None
        with self._lock:
            for fault in self._faults:
                if fault["operation"] == operation and fault["service"] in (None, service):
                    fault["times"] -= 1
                    if fault["times"] <= 0:
                        self._faults.remove(fault)
                    return dict(fault)
        return None
