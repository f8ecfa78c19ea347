#!/bin/sh
# scale-down.sh N: scale the bridge StatefulSet down to N pods without leaving
# a broker session behind. Removed pods drain on SIGTERM (preStop); once each
# is gone, `bridge retire --worker i` ends its session (retire-job.yaml).
set -eu
want=${1:?usage: scale-down.sh N (the number of bridge pods to keep)}
here=$(dirname "$0")
have=$(kubectl get statefulset bridge -o jsonpath='{.spec.replicas}')
[ "$want" -lt "$have" ] || { echo "bridge has $have pods; nothing to remove" >&2; exit 1; }
kubectl scale statefulset bridge --replicas="$want"
i=$want
while [ "$i" -lt "$have" ]; do
    kubectl wait --for=delete "pod/bridge-$i" --timeout=120s
    sed -e "s/bridge-retire-0/bridge-retire-$i/" -e "s/\"--worker\", \"0\"/\"--worker\", \"$i\"/" \
        "$here/retire-job.yaml" | kubectl apply -f -
    kubectl wait --for=condition=complete "job/bridge-retire-$i" --timeout=600s
    i=$((i + 1))
done
echo "scaled to $want; workers $want..$((have - 1)) retired"
