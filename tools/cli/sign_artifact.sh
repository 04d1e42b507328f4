#!/bin/sh
# The runbook's signing script: a thin wrapper over `apx sign`.
#   ./tools/cli/sign_artifact.sh ARTIFACT [--version V] [--policy-id ID] [--env production] [--key KEY]
# When the signing key is missing and a person is at the terminal, it offers to create one.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
apx="$here/apx"

case "${1:-}" in
  ""|-h|--help)
    cat <<'USAGE'
Usage: sign_artifact.sh ARTIFACT [--version V] [--policy-id ID] [--env ENV] [--key KEY]

Signs a policy artifact with apx sign: writes ARTIFACT.sig (cosign-compatible) and
ARTIFACT.sigstore.json (a Sigstore bundle binding policy id, version and environment).

  --version V       the semantic version (default: the one embedded by apx compile)
  --policy-id ID    the policy id (default: the one embedded by apx compile, else
                    from the file name ID@VERSION.wasm)
  --env ENV         dev, staging or production (default: dev)
  --key KEY         the private key (default: keys/cosign.key)

A flag that disagrees with the id or version embedded in the artifact is refused.

The key's password comes from COSIGN_PASSWORD, or a prompt on a terminal.
USAGE
    [ -n "${1:-}" ] && exit 0 || exit 2
    ;;
esac

key=keys/cosign.key
prev=""
for arg in "$@"; do
  [ "$prev" = "--key" ] && key=$arg
  case "$arg" in --key=*) key=${arg#--key=} ;; esac
  prev=$arg
done

if [ ! -e "$key" ] && [ -t 0 ] && [ -t 2 ]; then
  printf 'key file not found at %s. Generate a new key pair there? [y/N] ' "$key" >&2
  read -r answer
  case "$answer" in
    y|Y|yes) "$apx" generate-key-pair --output-key-prefix "${key%.key}" ;;
  esac
fi

exec "$apx" sign "$@"
