#!/bin/sh
# Makes a throwaway CA and a server certificate for 127.0.0.1 / localhost signed by it, in directory $1:
#   ca.crt, server.crt, server.key   the server's chain, trusted through ca_file
#   other-ca.crt                     an unrelated CA, for "wrong CA" tests
#   self-signed.crt, .key            `openssl req -x509` defaults (CA:TRUE), 127.0.0.1 only, for pinning
#   other-self-signed.crt            another like it
# EC P-256 keys keep generation fast. Nothing here is secret beyond the test run.
set -eu
dir=$1
cd "$dir"
openssl ecparam -name prime256v1 -genkey -noout -out ca.key 2>/dev/null
openssl req -x509 -new -key ca.key -sha256 -days 2 -subj "/CN=Vestibule test CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out ca.crt 2>/dev/null
openssl ecparam -name prime256v1 -genkey -noout -out server.key 2>/dev/null
openssl req -new -key server.key -subj "/CN=localhost" -out server.csr 2>/dev/null
cat > server.ext <<EXT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,DNS:localhost
EXT
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -sha256 \
    -extfile server.ext -out server.crt 2>/dev/null
openssl ecparam -name prime256v1 -genkey -noout -out other-ca.key 2>/dev/null
openssl req -x509 -new -key other-ca.key -sha256 -days 2 -subj "/CN=Unrelated CA" \
    -addext "basicConstraints=critical,CA:TRUE" -out other-ca.crt 2>/dev/null
# A certificate made the way many operators make one for a small directory: `openssl req -x509` with the default
# configuration, which marks it a CA (basicConstraints CA:TRUE) though the server presents it as its own. For
# 127.0.0.1 only (no DNS name), so that connecting to localhost is a wrong host name. And another one just like it
# (same name, another key), which must not pass for the first.
for name in self-signed other-self-signed; do
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -sha256 -days 2 \
        -subj "/CN=127.0.0.1" -addext "subjectAltName=IP:127.0.0.1" \
        -keyout "$name.key" -out "$name.crt" 2>/dev/null
done
chmod 600 ca.key server.key other-ca.key self-signed.key other-self-signed.key
