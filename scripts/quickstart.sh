#!/usr/bin/env bash
# Set up and serve one agency node on the embedded default (SQLite): README command (a).
#
# Installs the project into .venv, creates a federation CA, an LAPD node and an
# operator's certificate under var/quickstart (kept between runs), serves the node,
# reaches it over mTLS as the operator, and prints how to reach it yourself.
# It serves until Ctrl-C; with --once it stops after showing the node is reachable.
set -euo pipefail
cd "$(dirname "$0")/.."
once=false
[ "${1:-}" = "--once" ] && once=true

home=var/quickstart
listen=${ALPR_SERVER_LISTEN:-127.0.0.1:50051}
alpr=.venv/bin/alpr

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -e .

[ -f $home/ca/ca.crt ] || $alpr pki init-ca $home/ca --federation quickstart.alpr
[ -f $home/lapd/node.toml ] ||
    $alpr init $home/lapd --ori CA0194200 --name "Los Angeles Police Department" \
        --profile lapd --ca $home/ca --listen "$listen"
[ -f $home/operator/admin.crt ] ||
    $alpr pki issue-client $home/ca --ori CA0194200 --user admin --out $home/operator

ALPR_SERVER_LISTEN=$listen $alpr serve $home/lapd 2>$home/lapd/serve.log &
server=$!
trap 'kill -TERM $server 2>/dev/null; wait $server' EXIT

address=
for _ in $(seq 100); do
    address=$(sed -n 's/.*"msg": "serving".*"address": "\([^"]*\)".*/\1/p' $home/lapd/serve.log)
    [ -n "$address" ] && break
    kill -0 $server 2>/dev/null || { cat $home/lapd/serve.log >&2; exit 1; }
    sleep 0.1
done
[ -n "$address" ] || { echo "quickstart: the node did not start" >&2; exit 1; }
reach=($alpr admin info --target "$address" --ca $home/operator/ca.crt
    --cert $home/operator/admin.crt --key $home/operator/admin.key)
echo
echo "The node of CA0194200 is serving on $address (mTLS; logs: $home/lapd/serve.log)."
echo "Reached as its operator:"
"${reach[@]}" | sed 's/^/    /'
echo
echo "Reach it yourself with:"
echo "    ${reach[*]}"
if $once; then
    echo "(--once: stopping)"
    exit 0
fi
echo "Serving until Ctrl-C."
wait $server
