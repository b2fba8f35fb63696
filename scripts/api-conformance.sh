#!/usr/bin/env bash
# scripts/api-conformance.sh — the API against openapi.yaml, property-based:
# starts `arca serve` on loopback against a scratch database and repository,
# mints an admin token, and runs schemathesis (PyPI) with every check: any
# 5xx, any response that does not match the schema, any status code the
# document does not list, fails the run. Called by scripts/test.sh; expects
# the test cluster's PGHOST/PGPORT/PGUSER and a built .build/debug/arca.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v schemathesis >/dev/null 2>&1; then
  python3 -m pip install --quiet --disable-pip-version-check schemathesis
fi
ARCA=${ARCA:-$(swift build --show-bin-path)/arca}
PORT=${ARCA_API_TEST_PORT:-3999}
WORK=$(mktemp -d /tmp/arca-api-XXXXXX)
DB=arca_api_conformance
export JWT_SECRET=$(head -c 48 /dev/urandom | base64 | tr -d '\n')
export ARCA_RATE_LIMIT=100000/60

dropdb --if-exists --force "$DB"
createdb "$DB"
psql -X -q -v ON_ERROR_STOP=1 -d "$DB" -c 'CREATE TABLE "User" (id serial PRIMARY KEY, name text); INSERT INTO "User" (name) SELECT $$u$$ || g FROM generate_series(1, 100) g;'

DATABASE_URL="dbname=$DB" "$ARCA" serve --repo "$WORK/repo" --port "$PORT" > "$WORK/server.log" 2>&1 &
SERVER=$!
cleanup() { kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; dropdb --if-exists --force "$DB" || true; rm -rf "$WORK"; }
trap cleanup EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
DATABASE_URL="dbname=$DB" "$ARCA" backup --repo "$WORK/repo" --jobs 1 > /dev/null
TOKEN=$("$ARCA" token --subject conformance --role admin --ttl 1h)

schemathesis run openapi.yaml --url "http://127.0.0.1:$PORT" -H "Authorization: Bearer $TOKEN" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
  --max-examples "${ARCA_API_EXAMPLES:-25}" --workers 1 --no-color
