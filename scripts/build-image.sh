#!/usr/bin/env bash
# Builds the pve-exporter container image from deploy/container/Containerfile with Podman or
# Docker (whichever is installed; Podman first) and tags it
#   localhost/pve-exporter:<version of package.json>
#   localhost/pve-exporter:local
# then runs `--version` in the new image to check that its ENTRYPOINT starts the exporter.
# Needs neither Node.js nor npm on the host: the bundle is built inside the build stage.
#
# Usage: scripts/build-image.sh [--engine podman|docker] [--platform linux/arm64] [--dry-run]
#                               [-- <more arguments for podman/docker build>]
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: scripts/build-image.sh [options] [-- <extra build arguments>]

Builds the pve-exporter image and tags it localhost/pve-exporter:<version> and
localhost/pve-exporter:local.

Options:
  --engine podman|docker  container engine (default: $CONTAINER_ENGINE, else podman, else docker)
  --platform PLATFORM     build for another platform, e.g. linux/arm64 (skips the --version check)
  --dry-run               print the build command instead of running it
  -h, --help              this text

Run the image:   podman run --rm localhost/pve-exporter:local --help
From Quadlet:    Image=localhost/pve-exporter:local and AutoUpdate=local (docs/deploy-quadlet.md)
EOF
}

die() {
  echo "build-image.sh: $*" >&2
  exit 1
}

engine="${CONTAINER_ENGINE:-}"
platform=""
dry_run=false
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --engine) [ $# -ge 2 ] || die "--engine needs a value: podman or docker"; engine="$2"; shift 2 ;;
    --engine=*) engine="${1#*=}"; shift ;;
    --platform) [ $# -ge 2 ] || die "--platform needs a value, e.g. linux/arm64"; platform="$2"; shift 2 ;;
    --platform=*) platform="${1#*=}"; shift ;;
    --dry-run) dry_run=true; shift ;;
    -h | --help) usage; exit 0 ;;
    --) shift; extra=("$@"); break ;;
    *) echo "build-image.sh: unknown option: $1" >&2; usage >&2; exit 2 ;;
  esac
done

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
containerfile="$root/deploy/container/Containerfile"
[ -f "$containerfile" ] || die "$containerfile not found"

if [ -z "$engine" ]; then
  if command -v podman >/dev/null 2>&1; then
    engine=podman
  elif command -v docker >/dev/null 2>&1; then
    engine=docker
  else
    die "neither podman nor docker is installed (looked in PATH=$PATH).
Install one of them (Debian/Ubuntu: apt-get install podman; Fedora/RHEL: dnf install podman;
or Docker Engine), or use the published image ghcr.io/pve-exporter/pve-exporter instead."
  fi
fi
case "$engine" in
  podman | docker) ;;
  *) echo "build-image.sh: --engine must be podman or docker, not '$engine'" >&2; exit 2 ;;
esac

# The version is the top-level "version" of package.json (two-space indentation, as npm writes it).
version="$(sed -n 's/^  "version": *"\([^"]*\)".*/\1/p' "$root/package.json" | head -n 1)"
[ -n "$version" ] || die "no \"version\" found in $root/package.json"
revision="$(git -C "$root" rev-parse HEAD 2>/dev/null || echo unknown)"
# SOURCE_DATE_EPOCH (reproducible builds) fixes the creation time when set.
if [ -n "${SOURCE_DATE_EPOCH:-}" ]; then
  created="$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)"
else
  created="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
fi

image=localhost/pve-exporter
cmd=("$engine" build -f "$containerfile"
  --build-arg "VERSION=$version" --build-arg "REVISION=$revision" --build-arg "CREATED=$created"
  -t "$image:$version" -t "$image:local")
# Podman writes OCI images by default, which have no HEALTHCHECK field; the Docker format keeps it.
if [ "$engine" = podman ]; then cmd+=(--format docker); fi
if [ -n "$platform" ]; then cmd+=(--platform "$platform"); fi
cmd+=("${extra[@]}" "$root")

if $dry_run; then
  printf '%q ' "${cmd[@]}"
  printf '\n'
  exit 0
fi

command -v "$engine" >/dev/null 2>&1 || die "$engine is not installed (--engine $engine)"
if [ "$engine" = docker ] && ! docker info >/dev/null 2>&1; then
  die "docker is installed but its daemon does not answer ('docker info' failed): start it
(systemctl start docker), check DOCKER_HOST and your access to the socket, or use --engine podman."
fi

echo "build-image.sh: ${cmd[*]}" >&2
"${cmd[@]}"

if [ -z "$platform" ]; then
  got="$("$engine" run --rm "$image:local" --version)"
  [ "$got" = "$version" ] || die "the new image prints version '$got', expected '$version'"
fi
cat >&2 <<EOF
build-image.sh: built $image:$version and $image:local
  run it:       $engine run --rm -p 127.0.0.1:9221:9221 -v ./pve.yml:/etc/prometheus/pve.yml:ro $image:local
  Quadlet:      Image=$image:local with AutoUpdate=local (see docs/deploy-quadlet.md)
EOF
