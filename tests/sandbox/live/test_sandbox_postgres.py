"""Live tests of the sandbox's PostgreSQL (component 25-postgres): version 15, on loopback,
password authentication required, and `up` idempotent (same server, same credentials)."""
import os
import pathlib
import subprocess

import pytest

REQUIRED = ("PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE", "SANDBOX_POSTGRES_BIN")
ROOT = pathlib.Path(__file__).resolve().parents[3]


def psql(env, sql, **overrides):
    """Run one statement with psql (no ~/.pgpass, no prompt); returns the CompletedProcess."""
    e = dict(env, PGPASSFILE=os.devnull, PGCONNECT_TIMEOUT="5")
    for key, value in overrides.items():
        if value is None:
            e.pop(key, None)
        else:
            e[key] = value
    return subprocess.run([os.path.join(env["SANDBOX_POSTGRES_BIN"], "psql"), "-w", "-X", "-A", "-t", "-c", sql],
                          capture_output=True, text=True, env=e, timeout=30, check=False)


def test_server_is_postgresql_15_on_loopback(env):
    assert env["PGHOST"] == "127.0.0.1"
    r = psql(env, "SHOW server_version_num")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().startswith("15"), r.stdout
    r = psql(env, "SHOW listen_addresses")
    assert r.stdout.strip() == "127.0.0.1"


def test_user_is_superuser(env):
    r = psql(env, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
    assert r.returncode == 0 and r.stdout.strip() == "t", (r.stdout, r.stderr)


@pytest.mark.parametrize("password", [None, "", "wrong-password"], ids=["none", "empty", "wrong"])
def test_password_is_required(env, password):
    r = psql(env, "SELECT 1", PGPASSWORD=password)
    assert r.returncode != 0
    assert "password" in r.stderr, r.stderr


def test_scram_hashes_only(env):
    r = psql(env, "SELECT count(*) FROM pg_authid WHERE rolpassword IS NOT NULL AND rolpassword NOT LIKE 'SCRAM-SHA-256$%'")
    assert r.returncode == 0 and r.stdout.strip() == "0", (r.stdout, r.stderr)


def test_up_is_idempotent(env):
    before = psql(env, "SELECT pg_postmaster_start_time()").stdout
    sandbox_dir = os.environ.get("SANDBOX_DIR") or str(ROOT / ".sandbox")
    run_env = dict(os.environ, REPO_ROOT=str(ROOT), SANDBOX_DIR=sandbox_dir)
    r = subprocess.run(["bash", str(ROOT / "sandbox" / "components" / "25-postgres.sh"), "up"],
                       capture_output=True, text=True, env=run_env, timeout=120, check=False)
    assert r.returncode == 0, r.stderr
    env_file = pathlib.Path(sandbox_dir) / "env.d" / "25-postgres.env"
    assert f"export PGPORT={env['PGPORT']}\n" in env_file.read_text()
    assert psql(env, "SELECT pg_postmaster_start_time()").stdout == before, "up restarted a healthy server"
    status = subprocess.run(["bash", str(ROOT / "sandbox" / "components" / "25-postgres.sh"), "status"],
                            capture_output=True, text=True, env=run_env, timeout=60, check=False)
    assert status.returncode == 0, status.stdout + status.stderr
