#!/usr/bin/env python3
"""A stand-in route from the API server to host processes, for trying cm-sandbox by hand.

The sandbox's API server sends every dial into the cluster network (admission webhooks, aggregated
APIs) as an HTTP CONNECT on a unix socket (its egress selector, sandbox/components/20-kube.sh).
Listening on that socket, this answers ``CONNECT <ClusterIP>:<port>`` for the Services named on
the command line by splicing the connection to a loopback port, and anything else with 503 at
once (what the API server met before: nothing listening). The sandbox's own pod-network route
(issue 18, item 3) takes this place once it serves cert-manager's webhook; until then:

    connect_route.py SOCKET NAMESPACE/SERVICE:PORT=LOCALPORT ...

reads each Service's ClusterIP with kubectl (KUBECONFIG) and serves until stopped.
"""
import asyncio
import json
import os
import subprocess
import sys


def cluster_ip(namespace, name):
    out = subprocess.run(['kubectl', '-n', namespace, 'get', 'service', name, '-o', 'json'],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)['spec']['clusterIP']


async def pipe(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


def handler(routes):
    async def handle(reader, writer):
        head = await reader.readuntil(b'\r\n\r\n')
        method, target, _version = head.split(b'\r\n', 1)[0].decode().split(' ', 2)
        port = routes.get(target) if method == 'CONNECT' else None
        if port is None:
            writer.write(b'HTTP/1.1 503 Service Unavailable\r\n\r\nno host process behind %s\n' % target.encode())
            await writer.drain()
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection('127.0.0.1', port)
        writer.write(b'HTTP/1.1 200 Connection established\r\n\r\n')
        await writer.drain()
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
    return handle


async def main(socket_path, specs):
    routes = {}
    for spec in specs:
        service, local = spec.split('=')
        ref, port = service.rsplit(':', 1)
        namespace, name = ref.split('/')
        routes['%s:%s' % (cluster_ip(namespace, name), port)] = int(local)
    if os.path.exists(socket_path):
        os.unlink(socket_path)
    server = await asyncio.start_unix_server(handler(routes), path=socket_path)
    print('routing %s on %s' % (routes, socket_path), flush=True)
    async with server:
        await server.serve_forever()


if __name__ == '__main__':
    asyncio.run(main(sys.argv[1], sys.argv[2:]))
