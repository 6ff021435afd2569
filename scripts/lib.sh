# shellcheck shell=bash
# Start/stop the parts of the local stack. Source it:  . scripts/lib.sh
#
#   start_s3                          moto S3 server on $S3_PORT + bucket $S3_BUCKET
#   start_origin [NAME] [PORT]        docker-registry (s3 driver; ORIGIN_STORAGE_DIR: filesystem) on $ORIGIN_PORT
#   start_edge_wrangler [NAME] [PORT] the worker in `wrangler dev --local`
#   start_blackhole NAME PORT         a listener that never answers
#   start_webhook_receiver NAME PORT  a webhook receiver that records and fails on request
#   start_edge_miniflare NAME PORT [https]
#                                     the built worker (build/index.js) in Miniflare
#   stop_part NAME / stop_stack       stop one part / every recorded part
#   mirror_bucket_to_dir DIR [PREFIX] download the bucket's objects into DIR
#   edge_peak_rss_kb NAME             workerd peak RSS (VmHWM) of a Miniflare edge
#
# Each part records "PID STARTTIME" in $STACK_DIR/NAME.pid and logs to
# $STACK_DIR/NAME.log. Every part runs in its own process group; stopping
# signals that group only.
#
# Environment (defaults):
#   STACK_DIR=<repo>/.stack  S3_PORT=9000  ORIGIN_PORT=5000  EDGE_PORT=8787
#   STACK_WAIT_SECONDS=60 (wrangler: STACK_WAIT_SECONDS_WRANGLER=300)
#   REGISTRY_EDGE_CACHE=~/.cache/registry-edge (venv/, tls/)
#   Worker variables: STORAGE_BACKEND=s3 S3_ENDPOINT=http://127.0.0.1:$S3_PORT
#     S3_BUCKET=registry S3_REGION=us-east-1 S3_URL_STYLE=path
#     S3_ACCESS_KEY_ID=registry-edge S3_SECRET_ACCESS_KEY=registry-edge-secret
#     STORAGE_ROOT=/origin PRESIGN_SECONDS=1200 TAG_CACHE_SECONDS=5
#     Every other variable of EDGE_VAR_NAMES that is set in the environment is passed too.
#   Miniflare edge: R2_PRELOAD_DIR (files put into the R2 bucket REGISTRY_BUCKET,
#     key = path relative to the dir), EDGE_SCRIPT=build/index.js, EDGE_LOG_LEVEL.
#   Wrangler edge: WRANGLER_CONFIG (default wrangler.toml), EDGE_PROTOCOL=http|https,
#     WRANGLER_LOG_LEVEL=info, WRANGLER_INSPECTOR_PORT.

REGISTRY_EDGE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
: "${REGISTRY_EDGE_CACHE:=$HOME/.cache/registry-edge}"
: "${STACK_DIR:=$REGISTRY_EDGE_ROOT/.stack}"
: "${S3_PORT:=9000}"
: "${ORIGIN_PORT:=5000}"
: "${EDGE_PORT:=8787}"
: "${STACK_WAIT_SECONDS:=60}"
: "${STACK_WAIT_SECONDS_WRANGLER:=300}"
STACK_VENV="$REGISTRY_EDGE_CACHE/venv"
STACK_TLS_DIR="$REGISTRY_EDGE_CACHE/tls"

# Every variable and secret the worker reads (config::SETTINGS; a unit test keeps this list equal
# to it). Only those set in the environment are passed (the worker reads an empty one as unset). S3_ENDPOINT and ORIGIN_URL
# follow S3_PORT and ORIGIN_PORT at start time; ORIGIN_URL= makes a read-only edge.
EDGE_VAR_NAMES="STORAGE_BACKEND STORAGE_ROOT S3_ENDPOINT S3_BUCKET S3_REGION S3_URL_STYLE S3_ACCESS_KEY_ID S3_SECRET_ACCESS_KEY PRESIGN_SECONDS STORAGE_TIMEOUT_SECONDS BLOB_BASE_URL TAG_CACHE_SECONDS ORIGIN_URL ORIGIN_USERNAME ORIGIN_PASSWORD ORIGIN_TIMEOUT_SECONDS ORIGIN_UPLOAD_TIMEOUT_SECONDS CHUNK_MAX_LENGTH PUBLIC_URL EDGE_SECRET TOKEN_SIGNING_KEY TOKEN_PREVIOUS_KEYS ADMIN_USER ADMIN_PASSWORD REGISTRY_SERVICE TOKEN_ISSUER TOKEN_SECONDS REFRESH_TOKEN_SECONDS AUTH_CACHE_SECONDS UPSTREAMS JOB_RETRY_SECONDS WEBHOOK_ALLOW_HTTP PULL_EVENT_BATCH PULL_EVENT_SECONDS INDEX_REBUILD_BUDGET"
: "${S3_BUCKET:=registry}"
: "${S3_REGION:=us-east-1}"
: "${S3_URL_STYLE:=path}"
: "${S3_ACCESS_KEY_ID:=registry-edge}"
: "${S3_SECRET_ACCESS_KEY:=registry-edge-secret}"
: "${STORAGE_ROOT:=/origin}"
: "${PRESIGN_SECONDS:=1200}"
: "${TAG_CACHE_SECONDS:=5}"
: "${EDGE_SECRET:=local-edge-secret}"

# --- credentials -------------------------------------------------------------

# stack_credentials: the admin user and the token signing key of the local edges, exported as
# ADMIN_USER, ADMIN_PASSWORD and TOKEN_SIGNING_KEY. The admin comes from REGISTRY_ADMIN_USER /
# REGISTRY_ADMIN_PASSWORD when set; otherwise a password is generated once and kept in
# $STACK_DIR/admin-password. The key (P-256, PEM on one line with \n escapes) is kept in
# $STACK_DIR/token-signing-key.pem.
stack_credentials() {
  _stack_init
  export ADMIN_USER="${REGISTRY_ADMIN_USER:-${ADMIN_USER:-admin}}"
  if [ -n "${REGISTRY_ADMIN_PASSWORD:-}" ]; then
    export ADMIN_PASSWORD="$REGISTRY_ADMIN_PASSWORD"
  else
    if [ ! -s "$STACK_DIR/admin-password" ]; then
      (umask 077 && openssl rand -base64 32 | tr -d '/+=\n' >"$STACK_DIR/admin-password")
    fi
    export ADMIN_PASSWORD="$(cat "$STACK_DIR/admin-password")"
  fi
  if [ -z "${TOKEN_SIGNING_KEY:-}" ]; then
    if [ ! -s "$STACK_DIR/token-signing-key.pem" ]; then
      (umask 077 && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
        -out "$STACK_DIR/token-signing-key.pem" 2>/dev/null)
    fi
    TOKEN_SIGNING_KEY="$(awk '{ printf "%s\\n", $0 }' "$STACK_DIR/token-signing-key.pem")"
    export TOKEN_SIGNING_KEY
  fi
}

# write_auth_file FILE HOST:PORT...: a containers auth file (skopeo, podman: REGISTRY_AUTH_FILE)
# holding the admin's credentials for each registry address.
write_auth_file() {
  local file="$1" auth addr first=1
  shift
  auth="$(printf '%s:%s' "$ADMIN_USER" "$ADMIN_PASSWORD" | base64 -w0)"
  {
    printf '{"auths": {'
    for addr in "$@"; do
      [ "$first" = 1 ] || printf ', '
      first=0
      printf '"%s": {"auth": "%s"}' "$addr" "$auth"
    done
    printf '}}\n'
  } >"$file"
  chmod 600 "$file"
}

# --- process bookkeeping -----------------------------------------------------

_stack_init() { mkdir -p "$STACK_DIR"; }

# Field 22 of /proc/PID/stat (start time in ticks): guards against PID reuse.
_stack_starttime() {
  local stat
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 0
  stat="${stat##*) }"
  # shellcheck disable=SC2086
  set -- $stat
  echo "${20}"
}

# Is the recorded process of part NAME still the one we started?
_stack_alive() {
  local pidfile="$STACK_DIR/$1.pid" pid start
  [ -f "$pidfile" ] || return 1
  read -r pid start <"$pidfile" || return 1
  [ -n "$pid" ] && [ -n "$start" ] && [ "$(_stack_starttime "$pid")" = "$start" ]
}

# _stack_spawn NAME CMD...: run CMD from the repo root in a new process group
# (set -m), output to NAME.log, and record its pid and start time.
_stack_spawn() {
  local name="$1"
  shift
  _stack_init
  local log="$STACK_DIR/$name.log"
  : >"$log"
  (
    cd "$REGISTRY_EDGE_ROOT" || exit 1
    set -m
    "$@" </dev/null >>"$log" 2>&1 &
    echo "$! $(_stack_starttime $!)" >"$STACK_DIR/$name.pid"
  )
}

_stack_log_tail() {
  echo "--- last lines of $STACK_DIR/$1.log ---" >&2
  tail -n "${2:-30}" "$STACK_DIR/$1.log" >&2 2>/dev/null || true
  echo "---" >&2
}

# _stack_wait NAME WHAT SECONDS CHECK...: poll CHECK until it succeeds; fail
# (stopping the part) when the process exits or the time runs out.
_stack_wait() {
  local name="$1" what="$2" limit="$3"
  shift 3
  local deadline=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    if ! _stack_alive "$name"; then
      echo "stack: error: $name exited before $what" >&2
      _stack_log_tail "$name"
      rm -f "$STACK_DIR/$name.pid"
      return 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "stack: error: $name not $what after ${limit}s" >&2
      _stack_log_tail "$name"
      stop_part "$name" >/dev/null
      return 1
    fi
    sleep 0.2
  done
}

# Nothing may listen on the port yet (a stale server would answer our checks).
_stack_port_free() {
  if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
    echo "stack: error: port $1 (for $2) is already in use" >&2
    return 1
  fi
}

# Any HTTP answer (even an error status) from URL.
_stack_http_answers() {
  local code
  code="$(curl -sk -o /dev/null -w '%{http_code}' --max-time 2 "$1" 2>/dev/null)" || true
  [ -n "$code" ] && [ "$code" != 000 ]
}

_stack_http_ok() { curl -skf -o /dev/null --max-time 2 "$1"; }

_stack_log_has() { grep -q -- "$2" "$STACK_DIR/$1.log"; }

# stop_part NAME: TERM the part's process group, KILL it after 10 s.
stop_part() {
  local name="$1" pidfile="$STACK_DIR/$1.pid" pid="" start="" target
  [ -f "$pidfile" ] || return 0
  read -r pid start <"$pidfile" || true
  if [[ "$pid" =~ ^[0-9]+$ ]] && [ "$pid" -gt 1 ]; then
    if _stack_alive "$name"; then
      # The part leads its own group (see _stack_spawn); else signal it alone.
      if [ "$(ps -o pgid= -p "$pid" | tr -d ' ')" = "$pid" ]; then target="-$pid"; else target="$pid"; fi
    elif kill -0 -- "-$pid" 2>/dev/null; then
      # Leader gone, group left (e.g. an orphaned workerd): a live group's id
      # cannot be reused, so it is still ours.
      target="-$pid"
    else
      target=""
    fi
    if [ -n "$target" ]; then
      kill -TERM -- "$target" 2>/dev/null || true
      local i
      for ((i = 0; i < 50; i++)); do
        kill -0 -- "$target" 2>/dev/null || break
        sleep 0.2
      done
      kill -KILL -- "$target" 2>/dev/null || true
    fi
  fi
  rm -f "$pidfile" "$STACK_DIR/$name.workerd-pid"
  echo "stack: $name stopped"
}

# stop_stack: stop every part recorded in $STACK_DIR (edges first, s3 last).
stop_stack() {
  [ -d "$STACK_DIR" ] || return 0
  local f name
  for f in "$STACK_DIR"/*.pid; do
    [ -e "$f" ] || continue
    name="$(basename "$f" .pid)"
    case "$name" in
      s3 | origin) ;;
      *) stop_part "$name" ;;
    esac
  done
  stop_part origin
  stop_part s3
}

# --- S3 (moto) ---------------------------------------------------------------

_stack_py() {
  env AWS_ACCESS_KEY_ID="$S3_ACCESS_KEY_ID" AWS_SECRET_ACCESS_KEY="$S3_SECRET_ACCESS_KEY" \
    AWS_DEFAULT_REGION="$S3_REGION" S3_ENDPOINT="${S3_ENDPOINT:-http://127.0.0.1:$S3_PORT}" \
    S3_BUCKET="$S3_BUCKET" "$STACK_VENV/bin/python" "$@"
}

start_s3() {
  if _stack_alive s3; then
    echo "stack: s3 already running"
    return 0
  fi
  [ -x "$STACK_VENV/bin/moto_server" ] || { echo "stack: error: no moto_server in $STACK_VENV: run scripts/install" >&2; return 1; }
  _stack_port_free "$S3_PORT" s3 || return 1
  _stack_spawn s3 "$STACK_VENV/bin/moto_server" -H 127.0.0.1 -p "$S3_PORT"
  _stack_wait s3 "answering on 127.0.0.1:$S3_PORT" "$STACK_WAIT_SECONDS" \
    _stack_http_answers "http://127.0.0.1:$S3_PORT/" || return 1
  _stack_py - <<'EOF' || return 1
import os, boto3
s3 = boto3.client("s3", endpoint_url=os.environ["S3_ENDPOINT"])
try:
    s3.create_bucket(Bucket=os.environ["S3_BUCKET"])
except s3.exceptions.BucketAlreadyOwnedByYou:
    pass
EOF
  echo "stack: s3 ready on http://127.0.0.1:$S3_PORT (bucket $S3_BUCKET)"
}

# mirror_bucket_to_dir DIR [PREFIX]: every object of the bucket (or those
# under PREFIX) to DIR/KEY, e.g. to preload a Miniflare R2 bucket.
mirror_bucket_to_dir() {
  local dir="$1" prefix="${2:-}"
  mkdir -p "$dir"
  _stack_py - "$dir" "$prefix" <<'EOF'
import os, sys, boto3
dest, prefix = sys.argv[1], sys.argv[2]
s3 = boto3.client("s3", endpoint_url=os.environ["S3_ENDPOINT"])
count = 0
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=os.environ["S3_BUCKET"], Prefix=prefix):
    for obj in page.get("Contents", []):
        key = obj["Key"]
        root = os.path.abspath(dest)
        path = os.path.abspath(os.path.join(root, key))
        if not path.startswith(root + os.sep):
            raise SystemExit(f"refusing key outside {dest}: {key}")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        s3.download_file(os.environ["S3_BUCKET"], key, path)
        count += 1
print(f"stack: mirrored {count} objects to {dest}")
EOF
}

# --- origin (docker-registry on the S3 driver) -------------------------------

# start_origin [NAME] [PORT]: docker-registry on the bucket. With ORIGIN_HTPASSWD=FILE (made with
# `htpasswd -Bbn`) it wants Basic credentials, as a private origin does.
start_origin() {
  local name="${1:-origin}" port="${2:-$ORIGIN_PORT}" auth="" ready=_stack_http_ok
  if _stack_alive "$name"; then
    echo "stack: $name already running"
    return 0
  fi
  command -v docker-registry >/dev/null || { echo "stack: error: docker-registry not installed: run scripts/install" >&2; return 1; }
  _stack_port_free "$port" "$name" || return 1
  _stack_init
  if [ -n "${ORIGIN_HTPASSWD:-}" ]; then
    auth="auth:
  htpasswd:
    realm: registry-edge-origin
    path: $ORIGIN_HTPASSWD"
    ready=_stack_http_answers
  elif [ -n "${ORIGIN_TOKEN_REALM:-}" ]; then
    # Docker token authentication: tokens from ORIGIN_TOKEN_REALM, signed by a key whose
    # certificate is in ORIGIN_TOKEN_CERTS, for ORIGIN_TOKEN_SERVICE from ORIGIN_TOKEN_ISSUER.
    auth="auth:
  token:
    realm: $ORIGIN_TOKEN_REALM
    service: $ORIGIN_TOKEN_SERVICE
    issuer: $ORIGIN_TOKEN_ISSUER
    rootcertbundle: $ORIGIN_TOKEN_CERTS"
    ready=_stack_http_answers
  fi
  local config="$STACK_DIR/$name-config.yml" storage
  if [ -n "${ORIGIN_STORAGE_DIR:-}" ]; then
    # Its own filesystem storage: a registry that streams blob bytes itself (no redirects).
    storage="  filesystem:
    rootdirectory: $ORIGIN_STORAGE_DIR"
  else
    storage="  s3:
    accesskey: $S3_ACCESS_KEY_ID
    secretkey: $S3_SECRET_ACCESS_KEY
    region: $S3_REGION
    regionendpoint: ${S3_ENDPOINT:-http://127.0.0.1:$S3_PORT}
    bucket: $S3_BUCKET
    secure: false
    v4auth: true
    rootdirectory: $STORAGE_ROOT"
  fi
  cat >"$config" <<EOF
version: 0.1
log:
  level: info
  formatter: text
storage:
$storage
  redirect:
    disable: false
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$port
  secret: registry-edge-local-http-secret
  headers:
    X-Content-Type-Options: [nosniff]
compatibility:
  schema1:
    enabled: false
$auth
EOF
  # This machine sets AWS_CA_BUNDLE, which makes docker-registry panic. docker-registry reads
  # REGISTRY_* variables as configuration (REGISTRY_AUTH_FILE would become auth.file): none of
  # the environment's reach it.
  local unset=(-u AWS_CA_BUNDLE) var
  for var in "${!REGISTRY_@}"; do unset+=(-u "$var"); done
  _stack_spawn "$name" env "${unset[@]}" docker-registry serve "$config"
  _stack_wait "$name" "answering /v2/ on 127.0.0.1:$port" "$STACK_WAIT_SECONDS" \
    "$ready" "http://127.0.0.1:$port/v2/" || return 1
  echo "stack: $name ready on http://127.0.0.1:$port"
}

# --- edge: the worker --------------------------------------------------------

# KEY=VALUE lines of the worker variables.
_edge_vars() {
  local name value
  for name in $EDGE_VAR_NAMES; do
    case "$name" in
      STORAGE_BACKEND) echo "STORAGE_BACKEND=${STORAGE_BACKEND:-s3}" ;;
      S3_ENDPOINT) echo "S3_ENDPOINT=${S3_ENDPOINT:-http://127.0.0.1:$S3_PORT}" ;;
      ORIGIN_URL) echo "ORIGIN_URL=${ORIGIN_URL-http://127.0.0.1:$ORIGIN_PORT}" ;;
      # Unset is what the worker sees for an empty value too: pass only what is set. One line
      # each (a multi-line JSON value such as UPSTREAMS is folded: JSON reads it the same).
      *) if [ -n "${!name-}" ]; then
        value="${!name}"
        echo "$name=${value//$'\n'/ }"
      fi ;;
    esac
  done
  # The secrets UPSTREAMS entries name (username_secret, password_secret), from the environment.
  for name in $(_upstream_secret_names); do
    if [ -n "${!name-}" ]; then echo "$name=${!name}"; fi
  done
}

# The secret names UPSTREAMS (JSON) refers to, one per line (none when it is unset or not JSON:
# the worker reports a malformed UPSTREAMS itself).
_upstream_secret_names() {
  [ -n "${UPSTREAMS:-}" ] || return 0
  UPSTREAMS="$UPSTREAMS" python3 -c '
import json, os, re
try:
    entries = json.loads(os.environ["UPSTREAMS"])
except ValueError:
    entries = []
for e in entries if isinstance(entries, list) else []:
    for key in ("username_secret", "password_secret"):
        name = e.get(key) if isinstance(e, dict) else None
        if isinstance(name, str) and re.fullmatch(r"[A-Z0-9_]+", name):
            print(name)
'
}

# _start_listener NAME PORT WHAT SCRIPT [ARGS...]: the tests/support/SCRIPT server on PORT (it
# prints "listening" once it accepts), described as WHAT.
_start_listener() {
  local name="$1" port="$2" what="$3" script="$4"
  shift 4
  _stack_port_free "$port" "$name" || return 1
  _stack_spawn "$name" python3 "$REGISTRY_EDGE_ROOT/tests/support/$script" "$port" "$@"
  _stack_wait "$name" "listening on $port" "$STACK_WAIT_SECONDS" _stack_log_has "$name" '^listening' || return 1
  echo "stack: $name ($what) on 127.0.0.1:$port"
}

# start_blackhole NAME PORT: a listener that never answers (tests/support/blackhole.py).
start_blackhole() {
  _start_listener "$1" "$2" "never answers" blackhole.py
}

# start_fake_upstream NAME PORT UPSTREAM RECORDER_PORT: an upstream registry in front of
# UPSTREAM (HOST:PORT) that misbehaves when told to, with a recorder on 127.0.0.2:RECORDER_PORT
# (tests/support/fake-upstream.py).
start_fake_upstream() {
  _start_listener "$1" "$2" "misbehaves on request, in front of $3" fake-upstream.py "$3" "$4"
}

# start_webhook_receiver NAME PORT: a webhook receiver that records what it is sent and fails on
# request (tests/support/webhook-receiver.py).
start_webhook_receiver() {
  _start_listener "$1" "$2" "webhook receiver" webhook-receiver.py
}

# start_warning_proxy NAME PORT UPSTREAM: an origin that adds registry warnings to every answer
# of UPSTREAM (HOST:PORT) (tests/support/warning-proxy.py).
start_warning_proxy() {
  _start_listener "$1" "$2" "warns, in front of $3" warning-proxy.py "$3"
}

# trust_dev_certificate PORT: makes the local clients trust the stack's CA (which signed the
# edge's certificate) for 127.0.0.1:PORT and localhost:PORT: the system store (curl, and
# skopeo, podman, oras and the docker CLI, which read it), and containers' and docker's
# per-registry directories. Needs root
# (or sudo without a password); otherwise prints the commands. Returns 1 when nothing was done.
trust_dev_certificate() {
  local port="$1" cert="$STACK_TLS_DIR/ca.pem" sudo_="" host dir
  local system=/usr/local/share/ca-certificates/registry-edge-dev.crt
  if [ ! -s "$cert" ]; then
    echo "dev: no local CA at $cert: run scripts/install" >&2
    return 1
  fi
  if [ "$(id -u)" -ne 0 ]; then
    if sudo -n true 2>/dev/null; then
      sudo_=sudo
    else
      echo "dev: without root the local certificate is not trusted; as root, run:" >&2
      echo "  cp $cert $system && update-ca-certificates" >&2
      echo "  for d in /etc/docker/certs.d /etc/containers/certs.d; do mkdir -p \$d/127.0.0.1:$port; cp $cert \$d/127.0.0.1:$port/ca.crt; done" >&2
      return 1
    fi
  fi
  if ! cmp -s "$cert" "$system" 2>/dev/null; then
    $sudo_ mkdir -p "$(dirname "$system")"
    $sudo_ cp "$cert" "$system"
    if command -v update-ca-certificates >/dev/null; then
      $sudo_ update-ca-certificates >/dev/null 2>&1
    fi
  fi
  for host in "127.0.0.1:$port" "localhost:$port"; do
    for dir in /etc/docker/certs.d /etc/containers/certs.d; do
      cmp -s "$cert" "$dir/$host/ca.crt" 2>/dev/null && continue
      $sudo_ mkdir -p "$dir/$host"
      $sudo_ cp "$cert" "$dir/$host/ca.crt"
    done
  done
}

# start_edge_wrangler [NAME] [PORT]: `wrangler dev --local` (its [build] runs
# scripts/build). Local state persists in $STACK_DIR/NAME-state.
start_edge_wrangler() {
  local name="${1:-edge}" port="${2:-$EDGE_PORT}" proto="${EDGE_PROTOCOL:-http}" kv
  if _stack_alive "$name"; then
    echo "stack: $name already running"
    return 0
  fi
  _stack_port_free "$port" "$name" || return 1
  local args=(dev --local --ip 127.0.0.1 --port "$port" --show-interactive-dev-session=false
    --persist-to "$STACK_DIR/$name-state" --log-level "${WRANGLER_LOG_LEVEL:-info}")
  [ -z "${WRANGLER_CONFIG:-}" ] || args+=(--config "$WRANGLER_CONFIG")
  [ -z "${WRANGLER_INSPECTOR_PORT:-}" ] || args+=(--inspector-port "$WRANGLER_INSPECTOR_PORT")
  if [ "$proto" = https ]; then
    args+=(--local-protocol https --https-key-path "$STACK_TLS_DIR/key.pem"
      --https-cert-path "$STACK_TLS_DIR/cert.pem")
  fi
  while IFS= read -r kv; do
    args+=(--var "${kv%%=*}:${kv#*=}")
  done < <(_edge_vars)
  # CLOUDFLARE_CF_FETCH_ENABLED=false: no download of the Request.cf template.
  _stack_spawn "$name" env WRANGLER_SEND_METRICS=false CI=true CLOUDFLARE_CF_FETCH_ENABLED=false \
    "$REGISTRY_EDGE_ROOT/node_modules/.bin/wrangler" "${args[@]}"
  _stack_wait "$name" "ready on $proto://127.0.0.1:$port" "$STACK_WAIT_SECONDS_WRANGLER" \
    _stack_http_answers "$proto://127.0.0.1:$port/v2/" || return 1
  echo "stack: $name (wrangler dev) ready on $proto://127.0.0.1:$port"
}

# start_edge_miniflare NAME PORT [https]: serve build/index.js with Miniflare
# on its own socket. STORAGE_BACKEND=r2 with R2_PRELOAD_DIR for the R2 mode.
start_edge_miniflare() {
  local name="$1" port="$2" https="${3:-}" proto=http kv
  if _stack_alive "$name"; then
    echo "stack: $name already running"
    return 0
  fi
  [ -z "$https" ] || proto=https
  _stack_port_free "$port" "$name" || return 1
  local envs=(EDGE_NAME="$name" EDGE_HOST=127.0.0.1 EDGE_PORT="$port"
    EDGE_HTTPS="$([ "$proto" = https ] && echo 1 || echo 0)"
    EDGE_TLS_KEY="$STACK_TLS_DIR/key.pem" EDGE_TLS_CERT="$STACK_TLS_DIR/cert.pem"
    EDGE_STATE_DIR="$STACK_DIR" EDGE_VAR_NAMES="$EDGE_VAR_NAMES $(_upstream_secret_names | tr '\n' ' ')")
  while IFS= read -r kv; do
    envs+=("$kv")
  done < <(_edge_vars)
  _stack_spawn "$name" env "${envs[@]}" node "$REGISTRY_EDGE_ROOT/tests/support/edge.mjs"
  _stack_wait "$name" "ready on $proto://127.0.0.1:$port" "$STACK_WAIT_SECONDS" \
    _stack_log_has "$name" '^ready ' || return 1
  echo "stack: $name (miniflare, ${STORAGE_BACKEND:-s3}) ready on $proto://127.0.0.1:$port"
}

# edge_peak_rss_kb NAME: peak resident memory (VmHWM, KiB) of the edge's workerd.
edge_peak_rss_kb() {
  local pid
  pid="$(cat "$STACK_DIR/$1.workerd-pid" 2>/dev/null)" || { echo "stack: error: no workerd pid for $1" >&2; return 1; }
  awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status"
}
