#!/usr/bin/env sh
# Apply the abort actions of a policy-server decision with kubectl.
#   apply-actions.sh <decision-id>   (POLICY_SERVER_URL, default http://127.0.0.1:8181)
# Equivalent to: policy-server apply-actions --url "$POLICY_SERVER_URL" <decision-id>
set -eu
id="$1"
url="${POLICY_SERVER_URL:-http://127.0.0.1:8181}"
exec policy-server apply-actions --url "$url" "$id"
