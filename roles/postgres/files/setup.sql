-- Idempotent setup of one database and its owner, run by the in-cluster Job with psql:
--   psql -v ON_ERROR_STOP=1 -v db=NAME -v owner=ROLE -v password=SECRET -f setup.sql
-- The administrative login comes from PG* variables (the postgres-admin Secret). Works with a
-- superuser and with RDS's master user (which must be a member of the owner to hand it a database).
\set QUIET on
SELECT format('CREATE ROLE %I LOGIN', :'owner')
  WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'owner') \gexec
SELECT format('ALTER ROLE %I WITH LOGIN PASSWORD %L', :'owner', :'password') \gexec
SELECT format('GRANT %I TO %I', :'owner', current_user)
  WHERE NOT pg_has_role(current_user, :'owner', 'MEMBER') \gexec
SELECT format('CREATE DATABASE %I OWNER %I ENCODING %L', :'db', :'owner', 'UTF8')
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db') \gexec
SELECT format('ALTER DATABASE %I OWNER TO %I', :'db', :'owner') \gexec
SELECT format('database %s owned by %s', :'db', :'owner') AS result;
