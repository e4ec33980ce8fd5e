#!/usr/bin/env bash
# Entrypoint of the compose profile `ollama` (mounted into the official ollama/ollama image, run with bash).
#
#   entrypoint.sh [serve]        if an Ollama already answers at OLLAMA_URL, start none and use that one (e.g. the
#                                host's, OLLAMA_URL=http://host.docker.internal:11434); else run `ollama serve` here.
#                                Either way, pull the models of OLLAMA_PULL_MODELS that are missing, then stay up.
#   entrypoint.sh health         exit 0 when the Ollama in use answers and has every model of OLLAMA_PULL_MODELS
#   entrypoint.sh pull [MODEL..] pull the given models (default: OLLAMA_PULL_MODELS) that are missing
#   entrypoint.sh cli ARGS..     run the `ollama` CLI against the Ollama in use (list, rm, run, ps, ...)
#
# Environment (defaults in brackets):
#   OLLAMA_URL              [http://127.0.0.1:11434] where an Ollama may already answer (http only)
#   OLLAMA_PULL_MODELS      models to have, separated by commas or spaces. Without it, OLLAMA_MODELS is read as the
#                           list when it is not a path (inside Ollama, OLLAMA_MODELS is its model directory setting;
#                           then it is unset before `ollama serve`, which keeps its default directory).
#   OLLAMA_HOST             [0.0.0.0:11434] where the Ollama started here listens (Ollama's own setting)
#   OLLAMA_START_TIMEOUT_S  [120] how long a started `ollama serve` may take to answer
#   OLLAMA_PULL_TIMEOUT_S   [3600] longest pull of one model
#   OLLAMA_PROBE_TIMEOUT_S  [5] one probe of the API (GET / and GET /api/tags)
#   OLLAMA_STATE_DIR        [/tmp/ollama-entrypoint] where `serve` notes the URL in use for health/pull/cli
#
# Only bash and coreutils (timeout, date, sleep) are needed: the image has no curl, so HTTP/1.0 goes over /dev/tcp (a
# HTTP/1.0 request gets a plain, close-delimited answer, never a chunked one). Logs are JSON lines on stderr, like
# the other services'. Tested against a fake Ollama API by deploy/tests/test_ollama_entrypoint.py.
set -euo pipefail

CONFIGURED_URL=${OLLAMA_URL:-http://127.0.0.1:11434}
START_TIMEOUT_S=${OLLAMA_START_TIMEOUT_S:-120}
PULL_TIMEOUT_S=${OLLAMA_PULL_TIMEOUT_S:-3600}
PROBE_TIMEOUT_S=${OLLAMA_PROBE_TIMEOUT_S:-5}
STATE_DIR=${OLLAMA_STATE_DIR:-/tmp/ollama-entrypoint}

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }

json_str() {
  local s=$1
  s=${s//\\/\\\\}
  s=${s//\"/\\\"}
  s=${s//$'\n'/\\n}
  s=${s//$'\r'/\\r}
  s=${s//$'\t'/\\t}
  printf '"%s"' "$s"
}

log() {  # LEVEL MESSAGE
  printf '{"ts":"%s","level":"%s","logger":"ollama-entrypoint","msg":%s,"service":"ollama"}\n' \
    "$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)" "$1" "$(json_str "$2")" >&2
}

# The models to have, one per line (commas and whitespace separate them).
PULL_LIST=()
read_pull_list() {
  local raw=""
  if [[ -n ${OLLAMA_PULL_MODELS+set} ]]; then
    raw=$OLLAMA_PULL_MODELS
  elif [[ -n ${OLLAMA_MODELS:-} && ${OLLAMA_MODELS} != [/.~]* ]]; then
    raw=$OLLAMA_MODELS
    unset OLLAMA_MODELS  # a list, not Ollama's model directory
  fi
  read -r -a PULL_LIST <<<"${raw//,/ }"
}

# parse_url URL -> URL_HOST, URL_PORT, URL_PREFIX. "http://host[:port][/prefix]" (port 80 by default) or bare
# "host[:port]" (port 11434 by default), as the ollama CLI reads OLLAMA_HOST.
parse_url() {
  local url=$1 rest hostport default_port=11434
  case $url in
    http://*) rest=${url#http://} default_port=80 ;;
    *://*) log error "only http:// URLs are supported: $url"; return 2 ;;
    *) rest=$url ;;
  esac
  hostport=${rest%%/*}
  URL_PREFIX=""
  [[ $rest == */* ]] && URL_PREFIX=/${rest#*/}
  URL_PREFIX=${URL_PREFIX%/}
  if [[ $hostport =~ ^(.*):([0-9]+)$ ]]; then
    URL_HOST=${BASH_REMATCH[1]} URL_PORT=${BASH_REMATCH[2]}
  else
    URL_HOST=$hostport URL_PORT=$default_port
  fi
  URL_HOST=${URL_HOST#[}
  URL_HOST=${URL_HOST%]}
  [[ -n $URL_HOST ]] || { log error "no host in URL: $url"; return 2; }
}

# One HTTP/1.0 exchange over /dev/tcp, printing the raw answer (status line, headers, body). Arguments: method,
# host, port, path, body (JSON; may be empty).
# shellcheck disable=SC2016  # expanded by the inner bash, not here
RAW_HTTP='
set -e
exec 3<>"/dev/tcp/$2/$3"
LC_ALL=C
printf "%s %s HTTP/1.0\r\nHost: %s:%s\r\nUser-Agent: ollama-entrypoint\r\nAccept: */*\r\nConnection: close\r\n" \
  "$1" "$4" "$2" "$3" >&3
if [[ -n $5 ]]; then printf "Content-Type: application/json\r\nContent-Length: %d\r\n" "${#5}" >&3; fi
printf "\r\n%s" "$5" >&3
while IFS= read -r -u 3 line || [[ -n $line ]]; do printf "%s\n" "$line"; done
'

# http METHOD URL PATH TIMEOUT [BODY] -> HTTP_STATUS, HTTP_BODY. Fails when nothing answered in time.
http() {
  local method=$1 url=$2 path=$3 limit=$4 body=${5-} raw
  HTTP_STATUS="" HTTP_BODY=""
  parse_url "$url" || return 2
  raw=$(timeout "$limit" bash -c "$RAW_HTTP" _ "$method" "$URL_HOST" "$URL_PORT" "$URL_PREFIX$path" "$body" \
    2>/dev/null) || true
  [[ $raw == HTTP/* ]] || return 1
  HTTP_STATUS=${raw#* }
  HTTP_STATUS=${HTTP_STATUS%% *}
  HTTP_STATUS=${HTTP_STATUS%%$'\r'*}
  if [[ $raw == *$'\r\n\r\n'* ]]; then HTTP_BODY=${raw#*$'\r\n\r\n'}; fi
}

alive() {  # URL: Ollama answers GET / with 200 ("Ollama is running")
  http GET "$1" / "$PROBE_TIMEOUT_S" && [[ $HTTP_STATUS == 200 ]]
}

norm() {  # model name as Ollama lists it: lower case, ":latest" when no tag is given
  local m=${1,,}
  [[ ${m##*/} == *:* ]] || m+=":latest"
  printf '%s' "$m"
}

# installed URL -> INSTALLED (normalised names from GET /api/tags)
INSTALLED=()
installed() {
  local rest name re='"name"[[:space:]]*:[[:space:]]*"([^"]*)"'
  INSTALLED=()
  http GET "$1" /api/tags "$PROBE_TIMEOUT_S" && [[ $HTTP_STATUS == 200 ]] || return 1
  rest=$HTTP_BODY
  while [[ $rest =~ $re ]]; do
    name=${BASH_REMATCH[1]}
    INSTALLED+=("$(norm "$name")")
    rest=${rest#*"${BASH_REMATCH[0]}"}
  done
}

is_installed() {
  local want have
  want=$(norm "$1")
  for have in "${INSTALLED[@]}"; do [[ $have == "$want" ]] && return 0; done
  return 1
}

# pull_one URL MODEL: POST /api/pull, streaming its progress into the log. Succeeds on {"status":"success"}.
pull_one() {
  local url=$1 model=$2 line status="" in_headers=1 last="" err="" ok=1
  local re_status='"status"[[:space:]]*:[[:space:]]*"([^"]*)"' re_error='"error"[[:space:]]*:[[:space:]]*"([^"]*)"'
  parse_url "$url" || return 2
  log info "pulling $model into $url"
  while IFS= read -r line || [[ -n $line ]]; do
    line=${line%$'\r'}
    if [[ -z $status ]]; then
      status=${line#* } status=${status%% *}
      continue
    fi
    if ((in_headers)); then
      [[ -z $line ]] && in_headers=0
      continue
    fi
    if [[ $line =~ $re_error ]]; then err=${BASH_REMATCH[1]}; fi
    if [[ $line =~ $re_status ]]; then
      [[ ${BASH_REMATCH[1]} == success ]] && ok=0
      if [[ ${BASH_REMATCH[1]} != "$last" ]]; then
        last=${BASH_REMATCH[1]}
        log info "pull $model: $last"
      fi
    fi
  done < <(timeout "$PULL_TIMEOUT_S" bash -c "$RAW_HTTP" _ POST "$URL_HOST" "$URL_PORT" "$URL_PREFIX/api/pull" \
    "{\"model\":$(json_str "$model"),\"stream\":true}" 2>/dev/null || true)
  if [[ $status == 200 && $ok == 0 ]]; then
    log info "pulled $model"
    return 0
  fi
  log error "pull of $model failed (HTTP ${status:-no answer}${err:+: $err})"
  return 1
}

# ensure_models URL MODEL...: pull those not installed yet. Fails if any is still missing.
ensure_models() {
  local url=$1 model missing=() failed=0
  shift
  if (($# == 0)); then
    log info "no models to pull (OLLAMA_PULL_MODELS is empty)"
    return 0
  fi
  if ! installed "$url"; then
    log error "cannot list the models at $url (GET /api/tags)"
    return 1
  fi
  for model in "$@"; do
    if is_installed "$model"; then
      log info "model $model is present"
    else
      missing+=("$model")
    fi
  done
  ((${#missing[@]})) || return 0
  log info "missing models: ${missing[*]}"
  for model in "${missing[@]}"; do
    pull_one "$url" "$model" || failed=1
  done
  return "$failed"
}

local_url() {  # where the Ollama started here answers, from OLLAMA_HOST
  local hostport=${OLLAMA_HOST:-0.0.0.0:11434} host port=11434
  hostport=${hostport#*://}
  hostport=${hostport%%/*}
  if [[ $hostport =~ ^(.*):([0-9]+)$ ]]; then host=${BASH_REMATCH[1]} port=${BASH_REMATCH[2]}; else host=$hostport; fi
  case $host in "" | 0.0.0.0 | "[::]" | "::") host=127.0.0.1 ;; esac
  printf 'http://%s:%s' "$host" "$port"
}

url_in_use() {
  local url
  url=$(cat "$STATE_DIR/url" 2>/dev/null || true)
  printf '%s' "${url:-$CONFIGURED_URL}"
}

note_url() {
  mkdir -p "$STATE_DIR"
  printf '%s\n' "$1" >"$STATE_DIR/url"
}

CHILD=0
SLEEPER=0
serve() {
  local url status deadline
  read_pull_list
  if alive "$CONFIGURED_URL"; then
    url=$CONFIGURED_URL
    note_url "$url"
    log info "an Ollama already answers at $url: not starting another one"
    ensure_models "$url" "${PULL_LIST[@]}" || log error "some models are missing; retry with: scripts/stack pull"
    # Stay up (compose would restart an exited service); health follows the Ollama at $url.
    trap 'log info "stopping"; kill "$SLEEPER" 2>/dev/null || true; exit 0' TERM INT
    while true; do
      sleep 3600 &
      SLEEPER=$!
      wait "$SLEEPER" || true
    done
  fi

  url=$(local_url)
  note_url "$url"
  log info "no Ollama answers at $CONFIGURED_URL: starting ollama serve (OLLAMA_HOST=${OLLAMA_HOST:-0.0.0.0:11434})"
  ollama serve &
  CHILD=$!
  trap 'kill -TERM "$CHILD" 2>/dev/null || true' TERM INT
  deadline=$((SECONDS + START_TIMEOUT_S))
  until alive "$url"; do
    if ! kill -0 "$CHILD" 2>/dev/null; then
      status=0
      wait "$CHILD" || status=$?
      log error "ollama serve exited with status $status before answering"
      exit "$((status ? status : 1))"
    fi
    if ((SECONDS >= deadline)); then
      log error "ollama serve did not answer at $url within ${START_TIMEOUT_S}s"
      kill -TERM "$CHILD" 2>/dev/null || true
      wait "$CHILD" || true
      exit 1
    fi
    sleep 1
  done
  log info "ollama serve answers at $url"
  ensure_models "$url" "${PULL_LIST[@]}" || log error "some models are missing; retry with: scripts/stack pull"
  # Until ollama serve ends (a signal is forwarded by the trap, which interrupts wait: wait again).
  while true; do
    status=0
    wait "$CHILD" || status=$?
    kill -0 "$CHILD" 2>/dev/null || break
  done
  log info "ollama serve exited with status $status"
  exit "$status"
}

health() {
  local url model missing=()
  url=$(url_in_use)
  read_pull_list
  if ! installed "$url"; then
    echo "no answer from Ollama at $url"
    return 1
  fi
  for model in "${PULL_LIST[@]}"; do
    is_installed "$model" || missing+=("$model")
  done
  if ((${#missing[@]})); then
    echo "Ollama at $url lacks: ${missing[*]}"
    return 1
  fi
  echo "Ollama at $url answers; models: ${PULL_LIST[*]:-(none required)}"
}

pull() {
  local url
  url=$(url_in_use)
  if (($#)); then
    PULL_LIST=("$@")
  else
    read_pull_list
  fi
  ensure_models "$url" "${PULL_LIST[@]}"
}

main() {
  local cmd=${1:-serve}
  (($#)) && shift
  case $cmd in
    serve) serve ;;
    health) health ;;
    pull) pull "$@" ;;
    cli)
      OLLAMA_HOST=$(url_in_use)
      export OLLAMA_HOST
      exec ollama "$@"
      ;;
    -h | --help | help) usage ;;
    *)
      echo "unknown command: $cmd (serve, health, pull, cli; --help)" >&2
      exit 2
      ;;
  esac
}

# Sourcing the file (the tests do) defines the functions without running anything.
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  main "$@"
fi
