#!/bin/sh
# One-off setup of the compose deployment's secrets and broker files, run in
# the bridge image by `docker compose --profile setup run --rm setup`:
#   /secrets (./secrets on the host, mode 0700): database password and URL,
#     Grafana's admin and database passwords, the bridge's and the API's broker
#     passwords, the bridge's client certificate;
#   /mosquitto/config/bridge (the broker-etc volume): CA, server certificate,
#     password file, ACL, login gate and the rendered cloud.conf.
# Running it again keeps every existing secret and the CA (certificates are
# issued again). Passwords are hex, so they need no escaping in a URL.
set -eu
umask 077
S=/secrets
ETC=/mosquitto/config/bridge
mkdir -p "$ETC/conf.d"

secret() {  # secret NAME: a new random password in $S/NAME unless it exists
    [ -s "$S/$1" ] || python -c 'import secrets; print(secrets.token_hex(24))' > "$S/$1"
}
secret db_password
secret grafana_admin_password
secret grafana_db_password
printf 'postgresql://bridge:%s@db:5432/telemetry' "$(cat "$S/db_password")" > "$S/database_url"

bridge broker ca --out "$ETC" --host mosquitto --host localhost --client bridge --broker-group ""
bridge broker render cloud --etc "$ETC" --out "$ETC/conf.d/cloud.conf" \
    --templates /opt/bridge/mosquitto --broker-group ""
for user in bridge api; do
    [ -s "$S/mqtt_${user}_password" ] ||
        bridge broker provision "$user" --passwd "$ETC/passwd" > "$S/mqtt_${user}_password"
done
cp "$ETC/ca.crt" "$ETC/bridge.crt" "$ETC/bridge.key" "$S/"
chmod 0644 "$S"/*  # read by the services' own users inside their containers
echo "secrets in ./secrets, broker files in the broker-etc volume"
