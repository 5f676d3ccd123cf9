-- Idempotent setup of one database and its owner, run by the in-cluster Job with psql 15 or later:
--   DB_NAME=NAME DB_OWNER=ROLE DB_PASSWORD_VERIFIER='SCRAM-SHA-256$...' psql -v ON_ERROR_STOP=1 -f setup.sql
-- Its inputs come from the environment (\getenv), so nothing secret is on psql's command line; the
-- owner's password arrives as its SCRAM-SHA-256 verifier, which the server stores as it is: the
-- password itself never reaches the Job, the server, nor its statement log. The Job's shell refuses
-- a DB_PASSWORD_VERIFIER that is not a verifier before psql starts (a check in SQL would send it).
-- The administrative login comes from PG* variables (the postgres-admin Secret). Works with a
-- superuser and with RDS's master user (which must be a member of the owner to hand it a database).
\set QUIET on
\getenv db DB_NAME
\getenv owner DB_OWNER
\getenv verifier DB_PASSWORD_VERIFIER
SELECT format('CREATE ROLE %I LOGIN', :'owner')
  WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'owner') \gexec
SELECT format('ALTER ROLE %I WITH LOGIN PASSWORD %L', :'owner', :'verifier') \gexec
SELECT format('GRANT %I TO %I', :'owner', current_user)
  WHERE NOT pg_has_role(current_user, :'owner', 'MEMBER') \gexec
SELECT format('CREATE DATABASE %I OWNER %I ENCODING %L', :'db', :'owner', 'UTF8')
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db') \gexec
SELECT format('ALTER DATABASE %I OWNER TO %I', :'db', :'owner') \gexec
SELECT format('database %s owned by %s', :'db', :'owner') AS result;
