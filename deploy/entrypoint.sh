#!/bin/sh
# Secrets from files: for every BRIDGE_<KEY>_FILE variable, BRIDGE_<KEY> is
# set to the file's content (without its final newline) and the _FILE variable
# is removed, because the bridge refuses keys it does not know. Compose
# secrets and Kubernetes Secret volumes are files; this keeps their values out
# of the compose file, the manifests and `docker inspect`.
set -eu
for var in $(env | sed -n 's/^\(BRIDGE_[A-Z0-9_]*\)_FILE=.*/\1/p'); do
    file=$(printenv "${var}_FILE")
    if [ ! -r "$file" ]; then
        echo "bridge-entrypoint: ${var}_FILE names $file, which cannot be read" >&2
        exit 1
    fi
    value=$(cat "$file")
    export "$var=$value"
    unset "${var}_FILE"
done
exec "$@"
