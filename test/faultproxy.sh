#!/usr/bin/env bash
# test/faultproxy.sh: the fault proxy (vault/faultproxy) that the failure
# tests of every other suite rely on.  What it must do for them to mean
# anything: forward requests unchanged (method, path, query string, token,
# body, status, headers), keep the client's connection alive, guard its
# switches with the root token, and break exactly the requests it is told
# to, in exactly the way it is told to.
#
# Run by test/run, which starts the proxy in front of the Vault in use and
# exports VAULT_ADDR (the proxy) and PGV_BAO_ADDR (the server behind it).
set -uo pipefail
source "$(dirname "$0")/lib/summary.sh"

pgv_need_test_env
WORK=$(mktemp -d)
KV=faultproxy-test-$(openssl rand -hex 6)
trap 'vault_api DELETE /_dev/faults >/dev/null; vault_api DELETE "/v1/secret/metadata/$KV" >/dev/null; rm -rf "$WORK"' EXIT

# call [CURL ARGS...] URL-PATH: curl's exit status, the HTTP code, and the
# body in $WORK/body, headers in $WORK/headers
call() {
	local rc code
	code=$(curl -s "${CURL_TLS[@]}" -H "X-Vault-Token: $VAULT_TOKEN" -o "$WORK/body" \
		-D "$WORK/headers" -w '%{http_code}' "${@:1:$#-1}" "$VAULT_ADDR${*: -1}")
	rc=$?
	echo "$rc $code"
}
switch() { vault_api POST /_dev/faults "$1" >/dev/null; }
left() { vault_api GET /_dev/faults | json_get "$1"; }
# the first element of the list at KEY.PATH of the JSON on stdin
first_of() { /usr/bin/python3 -c 'import json, sys
v = json.load(sys.stdin)
for k in sys.argv[1].split("."):
    v = v[k]
print(v[0])' "$1"; }
body_is_json() { /usr/bin/python3 -c 'import json, sys; json.load(open(sys.argv[1]))' "$WORK/body" 2>/dev/null; }

vault_api DELETE /_dev/faults >/dev/null

# ---- forwarding ----
expect "a write goes through (KV v2 put)" "0 200" \
	"$(call -X POST -d '{"data":{"v":"through the proxy"}}' "/v1/secret/data/$KV/a")"
expect "and reads back unchanged" "through the proxy" \
	"$(call "/v1/secret/data/$KV/a" >/dev/null; json_get data.data.v <"$WORK/body")"
expect "a query string is forwarded (LIST as ?list=true)" "0 200 a" \
	"$(call "/v1/secret/metadata/$KV?list=true") $(first_of data.keys <"$WORK/body")"
expect "a 204 stays a 204" "0 204" "$(call -X DELETE "/v1/secret/metadata/$KV")"
expect "a 404 stays a 404" "0 404" "$(call "/v1/secret/data/$KV/none")"
expect "an error status and Vault's body pass through (bad token: 403)" "0 403 permission denied" \
	"$(curl -s "${CURL_TLS[@]}" -o "$WORK/body" -w '0 %{http_code}' -H 'X-Vault-Token: not-a-token' \
		"$VAULT_ADDR/v1/auth/token/lookup-self") $(first_of errors <"$WORK/body")"
got=$(curl -s "${CURL_TLS[@]}" -o /dev/null -o /dev/null -w '%{num_connects} ' \
	"$VAULT_ADDR/v1/sys/health" "$VAULT_ADDR/v1/sys/health")
expect "the client's connection is kept alive (connects per request)" "1 0 " "$got"

# ---- the switches: root token only, shown by GET, cleared by DELETE ----
expect "switches without the token: 403" 403 \
	"$(curl -s "${CURL_TLS[@]}" -o /dev/null -w '%{http_code}' -X POST -d '{"fail_next":1}' "$VAULT_ADDR/_dev/faults")"
expect "... nor with another token" 403 \
	"$(curl -s "${CURL_TLS[@]}" -o /dev/null -w '%{http_code}' -H 'X-Vault-Token: pgv-wrong' \
		-X POST -d '{"fail_next":1}' "$VAULT_ADDR/_dev/faults")"
expect "... and nothing was switched" 0 "$(left fail_next)"
expect "a malformed switch body: 400" 400 \
	"$(curl -s "${CURL_TLS[@]}" -o /dev/null -w '%{http_code}' -H "X-Vault-Token: $VAULT_TOKEN" \
		-X POST -d '{"fail_next":"two"}' "$VAULT_ADDR/_dev/faults")"
switch '{"fail_next":3,"latency_ms":5,"path_prefix":"transit/"}'
expect "GET shows the switches" "3 5 transit/" "$(left fail_next) $(left latency_ms) $(left path_prefix)"
vault_api DELETE /_dev/faults >/dev/null
expect "DELETE clears them" "0 0 " "$(left fail_next) $(left latency_ms) $(left path_prefix)"

# ---- each fault, on matching paths only ----
switch '{"fail_next":2,"fail_status":503,"retry_after":7,"path_prefix":"sys/mounts"}'
expect "a path outside the prefix is untouched" "0 200" "$(call /v1/sys/health)"
expect "fail_next: the status asked for" "0 503" "$(call /v1/sys/mounts)"
expect "... with Retry-After and Vault's error shape" "7 fault injected" \
	"$(tr -d '\r' <"$WORK/headers" | awk -F': ' 'tolower($1) == "retry-after" { print $2 }') $(first_of errors <"$WORK/body")"
call /v1/sys/mounts >/dev/null
expect "... exactly N times, then forwarded again" "0 0 200" "$(left fail_next) $(call /v1/sys/mounts)"

switch '{"close_next":1,"path_prefix":"sys/mounts"}'
expect "close_next: the connection closes with no answer (curl 52)" 52 "$(call /v1/sys/mounts | cut -d' ' -f1)"
expect "... once" "0 200" "$(call /v1/sys/mounts)"

switch '{"malformed_next":1,"path_prefix":"sys/mounts"}'
r=$(call /v1/sys/mounts)
if [ "$r" = "0 200" ] && ! body_is_json; then
	pgv_ok "malformed_next: a whole HTTP answer whose JSON is cut short"
else
	pgv_not_ok "malformed_next: $r"
fi

switch '{"truncated_next":1,"path_prefix":"sys/mounts"}'
expect "truncated_next: the transfer stops short of its length (curl 18)" 18 "$(call /v1/sys/mounts | cut -d' ' -f1)"

switch '{"oversize_next":1,"path_prefix":"sys/mounts"}'
r=$(call /v1/sys/mounts)
size=$(stat -c %s "$WORK/body")
if [ "$r" = "0 200" ] && [ "$size" -gt $((4 * 1024 * 1024)) ] && body_is_json; then
	pgv_ok "oversize_next: a valid JSON answer of $size bytes"
else
	pgv_not_ok "oversize_next: $r, $size bytes"
fi
expect "after all of them, requests are forwarded as before" "0 200" "$(call /v1/sys/mounts)"

# gather: requests meet in the proxy; max_inflight counts those at once
switch '{"gather":2,"path_prefix":"sys/mounts"}'
curl -s "${CURL_TLS[@]}" -o /dev/null -w '%{http_code}' -H "X-Vault-Token: $VAULT_TOKEN" \
	"$VAULT_ADDR/v1/sys/mounts" >"$WORK/g1" &
g1=$!
expect "gather 2: the second request releases both" 200 \
	"$(curl -s "${CURL_TLS[@]}" -o /dev/null -w '%{http_code}' -H "X-Vault-Token: $VAULT_TOKEN" "$VAULT_ADDR/v1/sys/mounts")"
wait $g1
expect "... and the first is answered too" 200 "$(cat "$WORK/g1")"
expect "max_inflight: 2 at once" 2 "$(left max_inflight)"
switch '{"gather":0,"path_prefix":"sys/mounts"}'
call /v1/sys/mounts >/dev/null
expect "setting the switches starts max_inflight again" 1 "$(left max_inflight)"
vault_api DELETE /_dev/faults >/dev/null

pgv_done
