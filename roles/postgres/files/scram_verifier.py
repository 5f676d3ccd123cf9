# -*- coding: utf-8 -*-
# Copyright: genai.stack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""SCRAM-SHA-256 verifiers of the owners' passwords, computed on the controller (the postgres role).

PostgreSQL stores a role's password as the verifier
`SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>` and accepts one in
`CREATE/ALTER ROLE ... PASSWORD`, storing it as it is. Sending the verifier instead of the password
keeps the password out of the server's statement log, out of pg_stat_activity and out of the
setup Job (which never sees it).

Input (standard input, never the command line): a JSON object
`{"passwords": {name: password}, "stored": {name: verifier kept from an earlier run}}`.
Output: `{name: verifier}`. A stored verifier is returned again when the password still matches it
(so an unchanged password is not a change); otherwise a new one is made with a random 16-byte salt
and 4096 iterations, PostgreSQL's defaults.

The password is prepared as libpq does (RFC 4013 SASLprep; pure ASCII as it is; a password that
SASLprep refuses is used as its raw UTF-8 bytes), so the owner logs in with it from any client.
"""
import base64
import hashlib
import hmac
import json
import os
import re
import stringprep
import sys
import unicodedata

ITERATIONS = 4096
SALT_BYTES = 16
VERIFIER = re.compile(r'^SCRAM-SHA-256\$([0-9]+):([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+):([A-Za-z0-9+/=]+)$')

_PROHIBITED = (stringprep.in_table_c12, stringprep.in_table_c21_c22, stringprep.in_table_c3, stringprep.in_table_c4,
               stringprep.in_table_c5, stringprep.in_table_c6, stringprep.in_table_c7, stringprep.in_table_c8,
               stringprep.in_table_c9, stringprep.in_table_a1)


def saslprep(password):
    """The bytes PostgreSQL hashes for `password` (its pg_saslprep, with the raw-password fallback)."""
    raw = password.encode('utf-8')
    if password.isascii():
        return raw
    mapped = ''.join(' ' if stringprep.in_table_c12(c) else c for c in password if not stringprep.in_table_b1(c))
    normalized = unicodedata.normalize('NFKC', mapped)
    if not normalized or any(check(c) for c in normalized for check in _PROHIBITED):
        return raw
    if any(stringprep.in_table_d1(c) for c in normalized):
        # Bidirectional text: no L characters, and it must start and end with RandALCat (RFC 3454 6).
        if any(stringprep.in_table_d2(c) for c in normalized):
            return raw
        if not (stringprep.in_table_d1(normalized[0]) and stringprep.in_table_d1(normalized[-1])):
            return raw
    return normalized.encode('utf-8')


def _keys(password, salt, iterations):
    salted = hashlib.pbkdf2_hmac('sha256', saslprep(password), salt, iterations)
    client_key = hmac.new(salted, b'Client Key', hashlib.sha256).digest()
    server_key = hmac.new(salted, b'Server Key', hashlib.sha256).digest()
    return hashlib.sha256(client_key).digest(), server_key


def _b64(data):
    return base64.b64encode(data).decode('ascii')


def make_verifier(password, salt=None, iterations=ITERATIONS):
    salt = os.urandom(SALT_BYTES) if salt is None else salt
    stored_key, server_key = _keys(password, salt, iterations)
    return 'SCRAM-SHA-256$%d:%s$%s:%s' % (iterations, _b64(salt), _b64(stored_key), _b64(server_key))


def matches(password, verifier):
    """True when `verifier` is a SCRAM-SHA-256 verifier of `password`."""
    found = VERIFIER.match(verifier or '')
    if not found:
        return False
    try:
        iterations, salt = int(found.group(1)), base64.b64decode(found.group(2), validate=True)
        stored_key, server_key = (base64.b64decode(found.group(n), validate=True) for n in (3, 4))
    except ValueError:
        return False
    if not 1 <= iterations <= 10 ** 7:
        return False
    want_stored, want_server = _keys(password, salt, iterations)
    return hmac.compare_digest(want_stored, stored_key) and hmac.compare_digest(want_server, server_key)


def verifiers(passwords, stored):
    out = {}
    for name, password in passwords.items():
        kept = (stored or {}).get(name) or ''
        out[name] = kept if matches(password, kept) else make_verifier(password)
    return out


def main():
    request = json.load(sys.stdin)
    json.dump(verifiers(request['passwords'], request.get('stored')), sys.stdout)


if __name__ == '__main__':
    main()
