#!/usr/bin/env bash
# The last step of `make run`: the bridge in the foreground, and in the
# background an edge agent with a simulated fleet of 100 pumps publishing
# through the dev broker, so a first run shows data flowing end to end, and
# the read API (its dev key, read and write, is made once into
# .stack/dev/api.env; its log is .stack/dev/log/api.log).
#
# The agent logs in as the gateway gw-site-1 (provisioned here once, with the
# broker's ACL letting it publish telemetry/site-1/+), spools in
# .stack/dev/edge-spool.db and logs to .stack/dev/log/edge-agent.log. It is
# stopped (SIGTERM) whenever the bridge exits, Ctrl-C included. Beside it, a
# simulated Sparkplug B edge node (edge-agent simulate --sparkplug) logs in as
# the gateway sp-site-1 (its own account: the dev broker makes a client id its
# username), publishing as group site-1 to the bridge, which runs with
# sparkplug.enabled; its log is .stack/dev/log/sparkplug-sim.log.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BIN=.venv/bin
STATE=.stack/dev
ETC=$STATE/mosquitto/etc
GATEWAY=gw-site-1
SPARKPLUG_NODE=sp-site-1
say() { printf '[run] %s\n' "$*" >&2; }

set -a
# shellcheck disable=SC1090
source <(scripts/stack.sh env dev)
set +a

# The ports follow the STACK_DEV_* overrides (through stack.sh env) and the
# bridge's, API's and agent's own variables, so what is printed is what runs.
MQTT_PORT=$BRIDGE_MQTT__PORT
PG_PORT=${BRIDGE_DATABASE__URL##*:}; PG_PORT=${PG_PORT%%/*}
HTTP_PORT=${BRIDGE_HTTP__PORT:-9108}
API_PORT=${BRIDGE_API__PORT:-9180}
EDGE_PORT=${EDGE_STATUS__PORT:-9120}
cat <<EOF
  Bridge      http://127.0.0.1:$HTTP_PORT/metrics  (also /healthz, /readyz)
  Edge agent  http://127.0.0.1:$EDGE_PORT/healthz  (also /metrics); 100 simulated pumps, log $STATE/log/edge-agent.log
  Read API    http://127.0.0.1:$API_PORT/docs  (key in $STATE/api.env), log $STATE/log/api.log
  Live view   http://127.0.0.1:$API_PORT/  (the line '[run] live view: ...' below has the URL with the dev key)

Publish a reading as the demo device (its credentials are in $STATE/credentials.env):
  source $STATE/credentials.env; mosquitto_pub -p $MQTT_PORT -u \$DEVICE_USERNAME -P \$DEVICE_PASSWORD -q 1 -t telemetry/site-1/pump-1 -m '{"data": {"flow_rate": 1234.5}}'
See it stored:
  psql -h 127.0.0.1 -p $PG_PORT -U bridge bridge -c 'SELECT * FROM telemetry ORDER BY time DESC LIMIT 5'
Or through the read API:
  source $STATE/api.env; curl -H "Authorization: Bearer \$API_KEY" http://127.0.0.1:$API_PORT/api/v1/devices?limit=5
Watch the fleet arrive:
  psql -h 127.0.0.1 -p $PG_PORT -U bridge bridge -c 'SELECT device_id, count(*), max(time) FROM telemetry GROUP BY 1 ORDER BY 1 LIMIT 5'
Ctrl-C stops the bridge, the edge agent and the API; make stop stops the services.

EOF

if [ ! -s "$STATE/gateway.env" ]; then
    say "provisioning the gateway account $GATEWAY on the dev broker"
    password=$("$BIN/bridge" broker provision "$GATEWAY" --gateway site-1 --acl "$ETC/acl" \
        --passwd "$ETC/passwd" --reload "$STATE/mosquitto/mosquitto.pid" 2>>"$STATE/log/broker-setup.log")
    (umask 077; printf 'EDGE_UPLINK__USERNAME=%s\nEDGE_UPLINK__PASSWORD=%s\n' "$GATEWAY" "$password" >"$STATE/gateway.env")
    say "its credentials are in $STATE/gateway.env"
fi

cat >"$STATE/edge.toml" <<TOML
# Written by scripts/run-dev.sh for make run; edits are overwritten.
[agent]
site_id = "site-1"

[spool]
path = "$ROOT/$STATE/edge-spool.db"

[uplink]
host = "127.0.0.1"
port = $BRIDGE_MQTT__PORT
client_id = "$GATEWAY"
TOML

set -a
# shellcheck disable=SC1091
source "$STATE/gateway.env"
set +a
"$BIN/edge-agent" --config "$STATE/edge.toml" simulate --devices 100 --rate 1 \
    >>"$STATE/log/edge-agent.log" 2>&1 &
agent=$!

if [ ! -s "$STATE/sparkplug.env" ]; then
    say "provisioning the Sparkplug edge node account $SPARKPLUG_NODE on the dev broker"
    password=$("$BIN/bridge" broker provision "$SPARKPLUG_NODE" --gateway site-1 --acl "$ETC/acl" \
        --passwd "$ETC/passwd" --reload "$STATE/mosquitto/mosquitto.pid" 2>>"$STATE/log/broker-setup.log")
    (umask 077; printf 'EDGE_UPLINK__USERNAME=%s\nEDGE_UPLINK__PASSWORD=%s\n' "$SPARKPLUG_NODE" "$password" >"$STATE/sparkplug.env")
fi
sed -e "s/^client_id = .*/client_id = \"$SPARKPLUG_NODE\"/" -e "s/edge-spool.db/sparkplug-spool.db/" \
    "$STATE/edge.toml" >"$STATE/sparkplug.toml"
(
    set -a
    # shellcheck disable=SC1091
    source "$STATE/sparkplug.env"
    set +a
    exec "$BIN/edge-agent" --config "$STATE/sparkplug.toml" simulate --sparkplug --devices 5 --rate 1
) >>"$STATE/log/sparkplug-sim.log" 2>&1 &
sparkplug_sim=$!

if [ ! -s "$STATE/api.env" ]; then
    key=$("$BIN/bridge" apikey create --scope read --scope write --name dev)
    (umask 077; printf 'API_KEY=%s\n' "$key" >"$STATE/api.env")
    say "made a read/write API key for the dev stack; it is in $STATE/api.env"
fi
"$BIN/bridge" api >>"$STATE/log/api.log" 2>&1 &
api=$!

stop_helpers() {
    local pid name
    for pid_name in "$agent:edge agent" "$sparkplug_sim:Sparkplug simulator" "$api:read API"; do
        pid=${pid_name%%:*} name=${pid_name#*:}
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
            say "$name stopped"
        fi
    done
}
trap stop_helpers EXIT
say "read API: http://127.0.0.1:$API_PORT/docs (pid $api), log $STATE/log/api.log"
# The key goes in the fragment, which the browser never sends: the page keeps
# it in localStorage and takes it out of the address bar.
say "live view: http://127.0.0.1:$API_PORT/#key=$(sed -n 's/^API_KEY=//p' "$STATE/api.env")"
say "edge agent: 100 simulated pumps (pid $agent), status http://127.0.0.1:$EDGE_PORT/healthz, log $STATE/log/edge-agent.log"

say "Sparkplug edge node $SPARKPLUG_NODE: 5 simulated pumps as devices $SPARKPLUG_NODE:pump-1..5 (pid $sparkplug_sim), log $STATE/log/sparkplug-sim.log"

# Not exec: this shell stays to stop the agent and the API when the bridge exits.
BRIDGE_SPARKPLUG__ENABLED=true "$BIN/bridge" run
