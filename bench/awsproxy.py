"""A counting pass-through proxy in front of the sandbox's AWS emulator.

Why: the sandbox journal records every AWS request, but not who made it, and the Kubernetes
node mirror polls the emulator read-only every ~2 s (eks ListClusters / ListNodegroups /
DescribeNodegroup, autoscaling DescribeAutoScalingGroups: ~25 requests/s with 16 clusters).
Those are the same operations the measured tools use, so they cannot be told apart in the
journal by operation or timing. The benchmark therefore points the measured tool (and only it)
at this proxy with AWS_ENDPOINT_URL; the proxy forwards every request unchanged to the
emulator and writes its own journal in the sandbox journal's format (operation and mutating
decided by the sandbox's own code, sandbox.aws.protocol), plus a `client` label.

The sandbox journal is still read for the same window and the difference is reported
(`aws_requests_other`), so the attribution is checked rather than assumed.

When the sandbox journal records the client itself (a `user_agent` field), bench/run.py can
filter the journal instead (see --attribution); this proxy is then not needed.
"""

from __future__ import annotations

import http.client
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from sandbox.aws import protocol  # noqa: E402  (the journal's own operation detection)

HOP_BY_HOP = {'connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailers',
              'transfer-encoding', 'upgrade'}


class CountingProxy:
    """Threaded HTTP/1.1 forwarder; `records` holds one dict per forwarded request."""

    def __init__(self, upstream: str, client_label: str = 'bench'):
        parts = urlsplit(upstream)
        self.upstream_host = parts.hostname
        self.upstream_port = parts.port or 80
        self.client_label = client_label
        self.records: list[dict] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.1'

            def log_message(self, fmt, *args):  # quiet
                pass

            def _forward(self):
                length = int(self.headers.get('Content-Length') or 0)
                body = self.rfile.read(length) if length else b''
                headers = {k.lower(): v for k, v in self.headers.items()}
                split = urlsplit(self.path)
                service = protocol.service_from_headers(headers)
                try:
                    operation = protocol.detect_operation(service, self.command, split.path, headers, body, split.query)
                except Exception:  # noqa: BLE001 - name unknown; still forwarded and counted
                    operation = None
                started = time.time()
                conn = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port, timeout=300)
                try:
                    fwd = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                    conn.request(self.command, self.path, body=body, headers=fwd)
                    resp = conn.getresponse()
                    data = resp.read()
                    status = resp.status
                    self.send_response_only(status, resp.reason)
                    for key, value in resp.getheaders():
                        if key.lower() in HOP_BY_HOP or key.lower() == 'content-length':
                            continue
                        self.send_header(key, value)
                    self.send_header('Content-Length', str(len(data)))
                    self.end_headers()
                    if self.command != 'HEAD':
                        self.wfile.write(data)
                finally:
                    conn.close()
                record = {'ts': round(started, 6), 'service': service, 'operation': operation,
                          'mutating': protocol.is_mutating(operation), 'status': status,
                          'ms': round((time.time() - started) * 1000, 2), 'client': proxy.client_label}
                with proxy._lock:
                    proxy.records.append(record)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _forward

        self.server = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.server.daemon_threads = True
        self.url = 'http://127.0.0.1:%d' % self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> 'CountingProxy':
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def mark(self) -> int:
        with self._lock:
            return len(self.records)

    def since(self, mark: int) -> list[dict]:
        with self._lock:
            return list(self.records[mark:])

    def set_label(self, label: str) -> None:
        self.client_label = label


def summarise(records: list[dict]) -> dict:
    by_op: dict[str, int] = {}
    for r in records:
        key = '%s:%s' % (r.get('service'), r.get('operation'))
        by_op[key] = by_op.get(key, 0) + 1
    mutating = [r for r in records if r.get('mutating')]
    return {
        'aws_requests': len(records),
        'aws_mutating': len(mutating),
        'aws_reads': len(records) - len(mutating),
        'aws_mutating_operations': sorted({'%s:%s' % (r.get('service'), r.get('operation')) for r in mutating}),
        'aws_requests_by_operation': dict(sorted(by_op.items())),
        'aws_errors': sum(1 for r in records if int(r.get('status') or 0) >= 400),
        'aws_api_ms': round(sum(r.get('ms', 0) for r in records), 1),
    }


if __name__ == '__main__':  # manual use: python bench/awsproxy.py  (prints its URL, then logs JSON lines)
    p = CountingProxy(os.environ['AWS_ENDPOINT_URL']).start()
    print(p.url, flush=True)
    seen = 0
    try:
        while True:
            time.sleep(1)
            for r in p.since(seen):
                print(json.dumps(r), flush=True)
            seen = p.mark()
    except KeyboardInterrupt:
        p.stop()
