"""The sandbox's AWS emulator: moto's WSGI app (server mode) behind a middleware that journals
every AWS request, injects queued faults and serves ``/_sandbox/*``.

    python -m sandbox.aws.server --host 127.0.0.1 --port 4566 --journal journal.jsonl
"""

from __future__ import annotations

import argparse
import io
import json
import os
import signal
import sys
import threading
import time
from typing import Any, Callable, Iterable

from . import eks_access, protocol
from .faults import FaultError, FaultQueue
from .iam_enforce import Denied, Enforcer
from .journal import Journal
from .outcomes import BOOK, OutcomeBook, OutcomeError

# Requests carrying this header are not journaled (the seeding script uses it).
INTERNAL_HEADER = "x-sandbox-internal"


def _headers(environ: dict[str, Any]) -> dict[str, str]:
    out = {}
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            out[key[5:].replace("_", "-").lower()] = value
    if environ.get("CONTENT_TYPE"):
        out["content-type"] = environ["CONTENT_TYPE"]
    return out


def _read_body(environ: dict[str, Any]) -> bytes:
    """Read the request body and put it back for moto."""
    stream = environ.get("wsgi.input")
    if stream is None:
        return b""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > 0:
        body = stream.read(length)
    elif environ.get("wsgi.input_terminated"):
        body = stream.read()
    else:
        body = b""
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    return body


class SandboxMiddleware:
    def __init__(self, app: Callable, journal: Journal, faults: FaultQueue,
                 outcomes: OutcomeBook = BOOK, iam: Enforcer | None = None):
        self.app = app
        # IAM enforcement (iam_enforce.py): SANDBOX_AWS_IAM, or /_sandbox/iam at run time.
        self.iam = iam if iam is not None else Enforcer()
        self.journal = journal
        self.faults = faults
        # The book patches.patch_eks_outcomes consumes (one per process).
        self.outcomes = outcomes
        self.started = time.time()
        self._router_cache: dict[str, Any] = {}

    # -- /_sandbox -------------------------------------------------------------------------
    def _json(self, start_response: Callable, status: int, payload: Any) -> list[bytes]:
        body = json.dumps(payload).encode()
        reason = {200: "OK", 201: "Created", 400: "Bad Request", 404: "Not Found",
                  405: "Method Not Allowed"}.get(status, "")
        start_response(f"{status} {reason}", [("Content-Type", "application/json"),
                                              ("Content-Length", str(len(body)))])
        return [body]

    def _sandbox(self, environ: dict[str, Any], start_response: Callable) -> list[bytes]:
        path = environ.get("PATH_INFO", "").rstrip("/")
        method = environ.get("REQUEST_METHOD", "GET")
        if path == "/_sandbox/health":
            return self._json(start_response, 200, {
                "status": "ok", "pid": os.getpid(), "uptime": round(time.time() - self.started, 3),
                "journal": self.journal.path})
        if path == "/_sandbox/faults":
            if method == "GET":
                return self._json(start_response, 200, {"faults": self.faults.list()})
            if method == "DELETE":
                return self._json(start_response, 200, {"cleared": self.faults.clear()})
            if method in ("POST", "PUT"):
                try:
                    spec = json.loads(_read_body(environ) or b"null")
                    return self._json(start_response, 201, {"faults": self.faults.add(spec)})
                except (ValueError, FaultError) as exc:
                    return self._json(start_response, 400, {"error": str(exc)})
            return self._json(start_response, 405, {"error": "GET, POST or DELETE"})
        if path == "/_sandbox/eks-outcomes":
            if method == "GET":
                return self._json(start_response, 200, self.outcomes.list())
            if method == "DELETE":
                return self._json(start_response, 200, self.outcomes.release())
            if method in ("POST", "PUT"):
                try:
                    spec = json.loads(_read_body(environ) or b"null")
                    return self._json(start_response, 201, {"queued": self.outcomes.add(spec)})
                except (ValueError, OutcomeError) as exc:
                    return self._json(start_response, 400, {"error": str(exc)})
            return self._json(start_response, 405, {"error": "GET, POST or DELETE"})
        if path == "/_sandbox/iam":
            if method == "GET":
                return self._json(start_response, 200, self.iam.state())
            if method in ("POST", "PUT"):
                try:
                    spec = json.loads(_read_body(environ) or b"null")
                    self.iam.set_mode((spec or {}).get("mode"))
                    return self._json(start_response, 200, self.iam.state())
                except (ValueError, AttributeError) as exc:
                    return self._json(start_response, 400, {"error": str(exc)})
            return self._json(start_response, 405, {"error": "GET or POST"})
        if path.startswith("/_sandbox/eks/"):
            # EKS's side of the sandbox's kube-apiserver: its control plane and token webhook.
            status, payload = eks_access.handle(path, method, _read_body(environ), environ,
                                                self.iam.is_root_key)
            return self._json(start_response, status, payload)
        return self._json(start_response, 404, {"error": f"no such sandbox endpoint: {path}"})

    # -- AWS requests ----------------------------------------------------------------------
    def _fallback_operation(self, service: str | None, environ: dict[str, Any]) -> str | None:
        """Other rest protocols: ask moto's router (botocore's model)."""
        if not service:
            return None
        try:
            from moto.core.routing import get_service_router
            from werkzeug.wrappers import Request

            router = self._router_cache.get(service)
            if router is None:
                router = self._router_cache[service] = get_service_router(service)
            operation, _ = router.match(Request(dict(environ)))
            return operation.name
        except Exception:  # noqa: BLE001 - unknown route: journal it without a name
            return None

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith("/_sandbox"):
            return self._sandbox(environ, start_response)
        if path.startswith("/moto-api") or path == "/favicon.ico":
            return self.app(environ, start_response)

        headers = _headers(environ)
        body = _read_body(environ)
        method = environ.get("REQUEST_METHOD", "GET")
        query = environ.get("QUERY_STRING", "")
        service = protocol.service_from_headers(headers)
        operation = protocol.detect_operation(service, method, path, headers, body, query)
        if operation is None:
            operation = self._fallback_operation(service, environ)
        mutating = protocol.is_mutating(operation)
        internal = INTERNAL_HEADER in headers
        # Who asked: the access key id of the signature, so sandbox daemons (the node mirror
        # signs as `sandbox-nodemirror`) can be told apart from the code under test.
        client = protocol.access_key_id(headers)

        if not internal:
            try:
                self.iam.authorize(service, operation, method, path, query, headers, body)
            except Exception as exc:  # noqa: BLE001 - a bug of the authoriser: an AWS-shaped 500 naming it
                denied = exc if isinstance(exc, Denied) else Denied(
                    "InternalFailure", f"the sandbox's IAM enforcement failed: {exc!r}", status=500)
                proto = protocol.detect_protocol(service, method, path, headers, body, query)
                status, resp_headers, resp_body = protocol.error_response(
                    proto, denied.code, denied.message, denied.status, headers.get("content-type", ""))
                self.journal.record(service, operation, mutating, status, client=client,
                                    denied=denied.action or denied.code)
                start_response(f"{status} Forbidden", resp_headers)
                return [resp_body]

        fault = None if internal else self.faults.take(service, operation)
        if fault:
            proto = protocol.detect_protocol(service, method, path, headers, body, query)
            status, resp_headers, resp_body = protocol.error_response(
                proto, fault["code"], fault["message"], fault["status"],
                headers.get("content-type", ""))
            self.journal.record(service, operation, mutating, status, fault=fault["code"], client=client)
            start_response(f"{status} Injected", resp_headers)
            return [resp_body]

        def recording_start_response(status: str, resp_headers: list, exc_info: Any = None):
            try:
                code = int(status.split(" ", 1)[0])
            except ValueError:
                code = 0
            self.iam.after(service, operation, code)
            if not internal:
                self.journal.record(service, operation, mutating, code, client=client)
            return start_response(status, resp_headers, exc_info)

        return self.app(environ, recording_start_response)


def build_app(journal_path: str | None) -> SandboxMiddleware:
    from . import patches

    patches.apply_all()
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    return SandboxMiddleware(DomainDispatcherApplication(create_backend_app), Journal(journal_path),
                             FaultQueue())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--journal", default=os.environ.get("SANDBOX_AWS_JOURNAL"))
    args = parser.parse_args(argv)

    # moto reads these at import time.
    os.environ.setdefault("MOTO_ALLOW_NONEXISTENT_REGION", "false")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-2")
    # A real account has the AWS managed policies (AmazonEKSWorkerNodePolicy, ...).
    os.environ.setdefault("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")

    from moto.moto_server.werkzeug_app import MotoRequestHandler
    from werkzeug.serving import make_server

    class QuietHandler(MotoRequestHandler):
        def log_request(self, code: Any = "-", size: Any = "-") -> None:  # the journal covers it
            pass

    app = build_app(args.journal)
    server = make_server(args.host, args.port, app, threaded=True, request_handler=QuietHandler)

    def stop(signum: int, frame: Any) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"sandbox aws: serving on http://{args.host}:{args.port} (pid {os.getpid()})",
          flush=True)
    server.serve_forever()
    print("sandbox aws: stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
