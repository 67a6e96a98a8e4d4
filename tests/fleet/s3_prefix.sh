#!/usr/bin/env bash
# s3_prefix.sh - an object-store prefix belongs to one registry (F12): the
# references under PREFIX/refs/ are keyed by checksum, name and version only,
# so a second registry on the same prefix would delete (rm, gc) the bytes the
# first still refers to. PREFIX/registry records the first registry's
# identity at its first change; another registry (another schema in the same
# database, a journal store) is refused there before it writes anything, and
# the first registry's version still verifies. Against real servers:
#
#   pg.sh run rgw.sh run s3_prefix.sh MCACHE
set -euo pipefail

[ $# -eq 1 ] || { echo "usage: s3_prefix.sh MCACHE" >&2; exit 2; }
MCACHE=$1
: "${AWS_ENDPOINT_URL:?run under tests/fleet/rgw.sh run}"
: "${MCACHE_TEST_PG_URL:?run under tests/fleet/pg.sh run}"
PSQL=${MCACHE_PG_BIN:-/usr/lib/postgresql/15/bin}/psql
command -v "$PSQL" >/dev/null || PSQL=psql

T=$(mktemp -d /tmp/mcs3prefix.XXXXXX)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
s3curl() {
  curl -sS --fail --aws-sigv4 "aws:amz:${AWS_REGION:-us-east-1}:s3" \
    --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
    -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$@"
}
BUCKET=mcprefix-$$
s3curl -X PUT "$AWS_ENDPOINT_URL/$BUCKET" -o /dev/null || fail "creating the bucket $BUCKET"
A=$MCACHE_TEST_PG_URL
"$PSQL" "$A" -qc 'CREATE SCHEMA teamb' || fail "creating the schema teamb"
case $A in *\?*) B="$A&options=-csearch_path%3Dteamb" ;; *) B="$A?options=-csearch_path%3Dteamb" ;; esac
"$MCACHE" --registry "$A" db migrate >/dev/null
"$MCACHE" --registry "$B" db migrate >/dev/null
head -c 3000000 /dev/urandom >"$T/m.bin"
MA=("$MCACHE" --store "$T/stA" --registry "$A" --artifacts "s3://$BUCKET/prod")
MB=("$MCACHE" --store "$T/stB" --registry "$B" --artifacts "s3://$BUCKET/prod")

"${MA[@]}" push resnet 1.0.1 "$T/m.bin" -q || fail "the first registry's push"
id=$(s3curl "$AWS_ENDPOINT_URL/$BUCKET/prod/registry") || fail "no PREFIX/registry after the first push"
echo "PREFIX/registry: $id"
case $id in *"schema public"*) ;; *) fail "PREFIX/registry does not name the schema: $id" ;; esac
before=$(s3curl "$AWS_ENDPOINT_URL/$BUCKET?prefix=prod" | md5sum)

# another schema of the same database, same prefix: every change refused, nothing written
if "${MB[@]}" push resnet 1.0.1 "$T/m.bin" -q 2>"$T/err"; then fail "the second registry's push was accepted"; fi
cat "$T/err"
grep -q "belongs to another registry" "$T/err" || fail "the refusal does not say why"
grep -q "schema teamb" "$T/err" || fail "the refusal does not name this registry"
grep -q "nothing was changed" "$T/err" || fail "the refusal does not say nothing was changed"
"${MB[@]}" ls >/dev/null 2>&1 || true
if "${MB[@]}" gc --keep 1 2>"$T/err"; then fail "the second registry's gc was accepted"; fi
grep -q "belongs to another registry" "$T/err" || fail "gc: $(cat "$T/err")"
# a journal store on the same prefix: refused the same way
if "$MCACHE" --store "$T/stJ" --artifacts "s3://$BUCKET/prod" push j 1.0.0 "$T/m.bin" -q 2>"$T/err"; then
  fail "a journal store's push onto the prefix was accepted"
fi
grep -q "belongs to another registry" "$T/err" || fail "journal: $(cat "$T/err")"
after=$(s3curl "$AWS_ENDPOINT_URL/$BUCKET?prefix=prod" | md5sum)
[ "$before" = "$after" ] || fail "the refused registries changed the prefix"
"${MA[@]}" verify resnet@1.0.1 >/dev/null || fail "the first registry's version no longer verifies"

# its own prefix works, and the first registry goes on as before
"${MB[@]/prod/teamb}" push resnet 1.0.1 "$T/m.bin" -q || fail "the second registry on its own prefix"
"${MB[@]/prod/teamb}" rm resnet@1.0.1 >/dev/null || fail "rm on its own prefix"
"${MA[@]}" verify resnet@1.0.1 >/dev/null || fail "the first registry's version after the other's rm"
"${MA[@]}" rm resnet@1.0.1 >/dev/null || fail "the first registry's rm"
echo "s3_prefix: all passed"
