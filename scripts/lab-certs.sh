#!/usr/bin/env bash
# The lab's TLS files, made once with openssl under DIR (default .lab/tls): both labs'
# servers present server.pem, and the tests verify it against ca.pem.
#
#   ca.pem, ca.key            the lab's CA ("lagtrace lab CA")
#   server.pem, server.key    signed by it, for localhost and 127.0.0.1
#   expired.pem, expired.key  signed by it, for the same names, expired in 2020
#   client.pem, client.key    signed by it, CN lagtrace (a client certificate)
#   other-ca.pem              a second CA that signed nothing (the wrong-CA tests)
#
# Usage: scripts/lab-certs.sh [DIR]. Prints DIR. Test material only: the keys are not
# protected and the lab's CA is trusted by nothing else.
set -euo pipefail

DIR=${1:-$(cd "$(dirname "$0")/.." && pwd)/.lab/tls}
mkdir -p "$DIR"
cd "$DIR"

command -v openssl >/dev/null 2>&1 || { apt-get install -y openssl >/dev/null; }

key() { [ -f "$1" ] || openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

# A leaf's extensions: its names and what it is for.
ext() { # ext FILE USAGE [SAN]
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$2"
    if [ -n "${3:-}" ]; then echo "subjectAltName=$3"; fi
  } >"$1"
}

ca() { # ca NAME CN
  key "$1.key"
  [ -f "$1.pem" ] || openssl req -x509 -new -key "$1.key" -days 3650 -subj "/CN=$2" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$1.pem" 2>/dev/null
}

# A leaf signed by the lab's CA, valid from START to END (openssl ca's YYMMDDHHMMSSZ)
# or for 10 years.
leaf() { # leaf NAME CN USAGE SAN [START END]
  local name=$1 cn=$2 usage=$3 san=$4 start=${5:-} end=${6:-}
  [ -f "$name.pem" ] && return 0
  key "$name.key"
  openssl req -new -key "$name.key" -subj "/CN=$cn" -out "$name.csr" 2>/dev/null
  ext "$name.ext" "$usage" "$san"
  if [ -z "$start" ]; then
    openssl x509 -req -in "$name.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile "$name.ext" -out "$name.pem" 2>/dev/null
  else
    # openssl x509 sets no dates in the past: a throwaway `openssl ca` does.
    local db; db=$(mktemp -d)
    : >"$db/index.txt"
    echo 1000 >"$db/serial"
    cat >"$db/ca.cnf" <<CNF
[ca]
default_ca = lab
[lab]
database = $db/index.txt
serial = $db/serial
new_certs_dir = $db
default_md = sha256
policy = any
copy_extensions = none
[any]
commonName = supplied
CNF
    openssl ca -batch -config "$db/ca.cnf" -cert ca.pem -keyfile ca.key -in "$name.csr" \
      -startdate "$start" -enddate "$end" -extfile "$name.ext" -out "$name.pem" 2>/dev/null
    rm -rf "$db"
  fi
  rm -f "$name.csr" "$name.ext"
}

ca ca "lagtrace lab CA"
ca other-ca "lagtrace lab other CA"
leaf server localhost serverAuth "DNS:localhost,IP:127.0.0.1"
leaf expired localhost serverAuth "DNS:localhost,IP:127.0.0.1" 200101000000Z 200102000000Z
leaf client lagtrace clientAuth ""
chmod 600 ./*.key
echo "$DIR"
