#!/bin/sh
# Runs once, when the database volume is first initialised (the image's
# /docker-entrypoint-initdb.d): a read-only role for Grafana, which may read
# every table the bridge's migrations create later.
set -eu
psql -v ON_ERROR_STOP=1 -v pw="$(cat /run/secrets/grafana_db_password)" \
     --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<'SQL'
CREATE ROLE grafana LOGIN PASSWORD :'pw';
GRANT USAGE ON SCHEMA public TO grafana;
ALTER DEFAULT PRIVILEGES FOR ROLE bridge IN SCHEMA public GRANT SELECT ON TABLES TO grafana;
SQL
