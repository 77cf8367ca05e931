#!/usr/bin/env bash
# Offline stand-in for public.ecr.aws/lambda/python:3.12 -- FOR OFFLINE MACHINES ONLY.
#
# Some build machines cannot reach public.ecr.aws. This script builds a local
# image with the same name so that `docker build`, `sam build`, `sam local invoke`
# and `sam local start-api` work unchanged. NEVER PUSH IT and never deploy an image
# built on top of it: it is Debian bookworm, not Amazon Linux, and its Python is
# Debian's 3.11, not 3.12 (the requirements are pinned to versions with wheels for
# both, so the same Dockerfiles build on either base).
#
# What it does, only if the real image is neither present nor pullable:
#   1. debootstrap a minimal bookworm rootfs from the mirror in this machine's apt
#      sources, with python3 + pip + CA certificates;
#   2. copy the host's CA bundle in (HTTPS here is intercepted; pip fails with
#      CERTIFICATE_VERIFY_FAILED without it) and bake PIP_CERT / REQUESTS_CA_BUNDLE
#      and `break-system-packages` into the image so the Dockerfiles' `pip install`
#      works;
#   3. pip install awslambdaric and add /lambda-entrypoint.sh (like the real image:
#      it runs the bundled Runtime Interface Emulator when AWS_LAMBDA_RUNTIME_API is
#      unset, so `docker run -p 9000:8080 IMAGE` can be invoked locally too);
#   4. `docker import` with the Lambda base image's ENTRYPOINT, WORKDIR and ENV.
# The rootfs tarball is cached, so re-runs only re-import it (seconds).
#
# Env:
#   STANDIN_CACHE_DIR   tarball cache (default .cache/standin)
#   STANDIN_MIRROR      Debian mirror (default: from /etc/apt/sources*)
#   STANDIN_IMAGE       tag to create (default public.ecr.aws/lambda/python:3.12)
#   STANDIN_RIE         path of aws-lambda-rie-x86_64 (default: found in .venv-sam)
#   STANDIN_FORCE=1     rebuild even if the image exists (the cached tarball is reused;
#                       delete it to re-debootstrap)
set -euo pipefail

IMAGE="${STANDIN_IMAGE:-public.ecr.aws/lambda/python:3.12}"
CACHE_DIR="${STANDIN_CACHE_DIR:-.cache/standin}"
SUITE=bookworm
AWSLAMBDARIC_VERSION=4.2.2
HOST_CA=/etc/ssl/certs/ca-certificates.crt
# Kept apart from Debian's own bundle, which update-ca-certificates regenerates.
IMAGE_CA=/etc/ssl/certs/host-ca-bundle.crt
TARBALL="$CACHE_DIR/rootfs-$SUITE-awslambdaric-$AWSLAMBDARIC_VERSION.tar"

log() { echo "[standin] $*" >&2; }

if [[ "${STANDIN_FORCE:-0}" != 1 ]]; then
  if docker image inspect "$IMAGE" >/dev/null 2>&1; then
    log "$IMAGE is present; nothing to do"
    exit 0
  fi
  if timeout 60 docker pull "$IMAGE" >/dev/null 2>&1; then
    log "pulled the real $IMAGE; no stand-in needed"
    exit 0
  fi
  log "cannot pull $IMAGE; building the offline stand-in"
fi

find_mirror() {
  # deb822 stanzas (*.sources): a URI ending in /debian whose Suites list $SUITE.
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -r "$f" ]] || continue
    awk -v suite="$SUITE" '
      /^[[:space:]]*$/ { uri = "" }
      /^URIs:/ { uri = $2 }
      /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == suite && uri ~ /\/debian\/?$/) { print uri; exit } }
    ' "$f"
  done
  # one-line format (*.list): deb [options] URI SUITE COMPONENTS...
  cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
    | sed -E 's/\[[^]]*\]//' \
    | awk -v suite="$SUITE" '$1 == "deb" && $3 == suite && $2 ~ /\/debian\/?$/ { print $2 }'
}

find_rie() {
  local candidate
  for candidate in "${STANDIN_RIE:-}" .venv-sam/lib/python3*/site-packages/samcli/local/rapid/aws-lambda-rie-x86_64; do
    if [[ -n "$candidate" && -f "$candidate" ]]; then
      echo "$candidate"
      return
    fi
  done
}

build_rootfs() {
  local mirror rootfs keyring_opt=() rie
  mirror="${STANDIN_MIRROR:-$(find_mirror 2>/dev/null | head -n 1 || true)}"
  mirror="${mirror:-http://deb.debian.org/debian}"
  [[ -f /usr/share/keyrings/debian-archive-keyring.gpg ]] \
    && keyring_opt=(--keyring=/usr/share/keyrings/debian-archive-keyring.gpg)
  command -v debootstrap >/dev/null || { log "debootstrap missing: apt-get install -y debootstrap"; exit 1; }

  rootfs="$(mktemp -d "${TMPDIR:-/tmp}/standin-rootfs.XXXXXX")"
  # shellcheck disable=SC2064  # expand now: the local is gone when the trap runs
  trap "rm -rf '$rootfs'" EXIT

  log "debootstrap $SUITE from $mirror"
  debootstrap --variant=minbase "${keyring_opt[@]}" \
    --include=python3,python3-pip,python3-venv,python-is-python3,ca-certificates \
    "$SUITE" "$rootfs" "$mirror" >&2

  install -m 0644 "$HOST_CA" "$rootfs$IMAGE_CA"
  # Debian marks its Python externally managed; the Lambda image's pip installs
  # system-wide, so the Dockerfiles do too.
  cat >"$rootfs/etc/pip.conf" <<EOF
[global]
break-system-packages = true
cert = $IMAGE_CA
disable-pip-version-check = true
EOF

  log "pip install awslambdaric==$AWSLAMBDARIC_VERSION in the chroot"
  cp /etc/resolv.conf "$rootfs/etc/resolv.conf"
  # env -i: the host's PIP_* settings (find-links, constraints) must not leak in.
  chroot "$rootfs" env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
    PIP_CERT="$IMAGE_CA" REQUESTS_CA_BUNDLE="$IMAGE_CA" \
    pip install --no-cache-dir "awslambdaric==$AWSLAMBDARIC_VERSION" >&2
  : >"$rootfs/etc/resolv.conf"  # docker provides its own at run time

  rie="$(find_rie)"
  if [[ -n "$rie" ]]; then
    install -m 0755 "$rie" "$rootfs/usr/local/bin/aws-lambda-rie"
    log "bundled the Runtime Interface Emulator from $rie"
  else
    log "no aws-lambda-rie found (install .venv-sam); 'docker run' will need AWS_LAMBDA_RUNTIME_API"
  fi
  cat >"$rootfs/lambda-entrypoint.sh" <<'EOF'
#!/bin/sh
# Stand-in for the Lambda base image's entrypoint. Lambda and `sam local` set
# AWS_LAMBDA_RUNTIME_API; a bare `docker run` does not, so run the emulator then.
if [ -z "${AWS_LAMBDA_RUNTIME_API:-}" ] && [ -x /usr/local/bin/aws-lambda-rie ]; then
  exec /usr/local/bin/aws-lambda-rie python3 -m awslambdaric "$@"
fi
exec python3 -m awslambdaric "$@"
EOF
  chmod 0755 "$rootfs/lambda-entrypoint.sh"
  mkdir -p "$rootfs/var/task" "$rootfs/var/runtime"
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/root/.cache

  mkdir -p "$CACHE_DIR"
  tar --numeric-owner -C "$rootfs" -cf "$TARBALL.partial" .
  mv "$TARBALL.partial" "$TARBALL"
  rm -rf "$rootfs"
  trap - EXIT
  log "cached rootfs at $TARBALL ($(du -h "$TARBALL" | cut -f1))"
}

[[ -f "$TARBALL" ]] || build_rootfs

docker import \
  --change 'ENTRYPOINT ["/lambda-entrypoint.sh"]' \
  --change 'WORKDIR /var/task' \
  --change 'ENV LAMBDA_TASK_ROOT=/var/task' \
  --change 'ENV LAMBDA_RUNTIME_DIR=/var/runtime' \
  --change 'ENV LANG=C.UTF-8' \
  --change "ENV PIP_CERT=$IMAGE_CA" \
  --change "ENV REQUESTS_CA_BUNDLE=$IMAGE_CA" \
  --change 'ENV PIP_BREAK_SYSTEM_PACKAGES=1' \
  --change 'ENV PIP_DISABLE_PIP_VERSION_CHECK=1' \
  --change 'LABEL org.opencontainers.image.description="OFFLINE STAND-IN for public.ecr.aws/lambda/python:3.12 (Debian bookworm, Python 3.11). Never push."' \
  --message "offline stand-in built by scripts/standin_base_image.sh" \
  "$TARBALL" "$IMAGE" >/dev/null
log "tagged $IMAGE (stand-in: Debian $SUITE, $(docker run --rm --entrypoint python3 "$IMAGE" --version)); never push it"
