# The `helm test` pod's script (templates/tests/test-dns.yaml), for bash with coreutils:
# each zone's SOA through the DNS Service over TCP, then /readyz through the metrics
# Service. DNS_SERVER, DNS_PORT, ZONES (space-separated) and, when the metrics Service
# is rendered, ADMIN_SERVER and ADMIN_PORT come from the pod's environment.
set -euo pipefail
# A server that closes early makes a write fail (and is reported), not kill the check.
trap '' PIPE

# One DNS query over TCP (RFC 1035 4.2.2: a two-byte length, then the message): the
# zone's SOA, no recursion asked. Passes on an authoritative NOERROR answer with at
# least one record.
check_soa() {
  local zone="${1%.}" id=18004 qname="" label i len
  local IFS=.
  for label in $zone; do
    qname+="$(printf '\\x%02x' "${#label}")"
    for ((i = 0; i < ${#label}; i++)); do qname+="$(printf '\\x%02x' "'${label:i:1}")"; done
  done
  unset IFS
  # Header (12 bytes) + name + root label + type SOA (6) + class IN (1).
  len=$((12 + ${#qname} / 4 + 1 + 4))
  exec 3<>"/dev/tcp/$DNS_SERVER/$DNS_PORT" ||
    { echo "SOA $zone: cannot connect to $DNS_SERVER:$DNS_PORT (TCP)"; return 1; }
  printf '%b' "$(printf '\\x%02x\\x%02x' $((len >> 8)) $((len & 255)))" \
    "$(printf '\\x%02x\\x%02x' $((id >> 8)) $((id & 255)))" \
    '\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00' "$qname" '\x00\x00\x06\x00\x01' >&3
  # Length (2), id (2), flags (2), QDCOUNT (2), ANCOUNT (2).
  local b
  read -r -a b < <(od -An -tu1 -N10 <&3)
  exec 3<&-
  [ "${#b[@]}" = 10 ] || { echo "SOA $zone: no answer from $DNS_SERVER:$DNS_PORT (TCP)"; return 1; }
  local got_id=$((b[2] * 256 + b[3])) rcode=$((b[5] & 15)) answers=$((b[8] * 256 + b[9]))
  local aa=$(((b[4] & 4) / 4)) qr=$(((b[4] & 128) / 128))
  if [ "$got_id" != "$id" ] || [ "$qr" != 1 ]; then
    echo "SOA $zone: not a response to the query (id $got_id, qr $qr)"
    return 1
  fi
  if [ "$rcode" != 0 ] || [ "$aa" != 1 ] || [ "$answers" -lt 1 ]; then
    echo "SOA $zone: rcode $rcode (0 expected), authoritative $aa (1 expected), $answers answers (1 expected)"
    return 1
  fi
  echo "SOA $zone: authoritative answer from $DNS_SERVER:$DNS_PORT"
}

check_readyz() {
  local status
  exec 3<>"/dev/tcp/$ADMIN_SERVER/$ADMIN_PORT" ||
    { echo "/readyz: cannot connect to $ADMIN_SERVER:$ADMIN_PORT"; return 1; }
  printf 'GET /readyz HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n' "$ADMIN_SERVER" >&3
  IFS= read -r status <&3 || true
  exec 3<&-
  status="${status%$'\r'}"
  case "$status" in
    "HTTP/1."?" 200"*) echo "/readyz: $status" ;;
    *) echo "/readyz on $ADMIN_SERVER:$ADMIN_PORT: ${status:-no answer} (200 expected)"; return 1 ;;
  esac
}

export -f check_soa check_readyz
failed=0
for zone in $ZONES; do
  timeout 15 bash -c 'check_soa "$1"' _ "$zone" || failed=1
done
if [ -n "${ADMIN_SERVER:-}" ]; then
  timeout 15 bash -c check_readyz || failed=1
else
  echo "/readyz: not checked (metrics.service.enabled is off: no Service reaches the admin port)"
fi
exit "$failed"
