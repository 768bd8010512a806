#!/usr/bin/env bash
# Stand-in for the system commands the role runs (sudo, systemctl, podman, loginctl, journalctl,
# useradd, usermod, userdel, getent), for test/deploy-ansible.test.ts: it runs the role's full
# install and uninstall paths on a machine without systemd as PID 1 and without touching its users.
# Linked under each command's name in a directory put first on PATH. Every call that would change
# the system is appended to $STUB_LOG (one line: command and arguments, plus what existed then),
# so the test can assert the order. State (users, running units) lives in $STUB_STATE.
set -euo pipefail
name=$(basename "$0")
: "${STUB_LOG:?}" "${STUB_STATE:?}" "${STUB_ROOT:?}" "${STUB_USER:?}" "${STUB_UID:?}"
mkdir -p "$STUB_STATE"

# What exists at the moment of a call: the Quadlet unit and the config directory.
snapshot() {
  local unit=absent config=absent
  [ -e "${STUB_UNIT_FILE:-/nonexistent}" ] && unit=present
  [ -e "${STUB_CONFIG_DIR:-/nonexistent}" ] && config=present
  echo "[unit=$unit config=$config]"
}
record() { echo "$name $* $(snapshot)" >>"$STUB_LOG"; }

case "$name" in
  sudo)
    # sudo -H -S -n -u USER /bin/sh -c '...': run the command as ourselves.
    while [ $# -gt 0 ]; do
      case "$1" in
        -u) shift 2 ;;
        -p) shift 2 ;;
        -*) shift ;;
        *) break ;;
      esac
    done
    exec "$@"
    ;;
  systemctl)
    args=()
    for a in "$@"; do [ "$a" = --user ] || [ "$a" = -l ] || args+=("$a"); done
    cmd=${args[0]:-}; unit=${args[1]:-}
    case "$cmd" in
      show)
        active=inactive; [ -e "$STUB_STATE/active-$unit" ] && active=active
        printf 'Id=%s\nLoadState=loaded\nActiveState=%s\nSubState=%s\n' "$unit" "$active" \
          "$([ $active = active ] && echo running || echo dead)"
        ;;
      is-enabled)
        if [ -e "$STUB_STATE/enabled-$unit" ]; then echo enabled; else echo disabled; exit 1; fi
        ;;
      is-active)
        if [ -e "$STUB_STATE/active-$unit" ]; then echo active; else echo inactive; exit 3; fi
        ;;
      start|restart) record "$@"; touch "$STUB_STATE/active-$unit" ;;
      stop) record "$@"; rm -f "$STUB_STATE/active-$unit" ;;
      enable) record "$@"; touch "$STUB_STATE/enabled-$unit" ;;
      disable) record "$@"; rm -f "$STUB_STATE/enabled-$unit" ;;
      daemon-reload) record "$@" ;;
      *) echo "stub systemctl: unexpected $*" >&2; exit 1 ;;
    esac
    ;;
  podman)
    case "${1:-}" in
      --version) echo "podman version ${STUB_PODMAN_VERSION:-4.9.3}" ;;
      rmi) record "$@"; echo "Untagged: ${*: -1}" ;;
      load)
        # podman load --input FILE: the image named in FILE's first line (the test writes
        # "image: NAME" there) becomes present.
        record "$@"
        file=${*: -1}
        img=$(sed -n 's/^image: //p' "$file" | head -1)
        [ -n "$img" ] || { echo "stub podman load: $file is not an image archive" >&2; exit 125; }
        echo "$img" >>"$STUB_STATE/images"
        echo "Loaded image: $img"
        ;;
      image)
        [ "${2:-}" = exists ] || { echo "stub podman: unexpected $*" >&2; exit 1; }
        grep -qxF -- "${3:-}" "$STUB_STATE/images" 2>/dev/null || exit 1
        ;;
      *) echo "stub podman: unexpected $*" >&2; exit 1 ;;
    esac
    ;;
  loginctl)
    record "$@"
    linger="$STUB_ROOT/var/lib/systemd/linger/${2:-}"
    case "${1:-}" in
      enable-linger) mkdir -p "$(dirname "$linger")"; touch "$linger" ;;
      disable-linger) rm -f "$linger" ;;
    esac
    ;;
  journalctl)
    record "$@"
    for i in 1 2 3; do echo "stub-journal line $i: pve-exporter.service config: module \"x\": cannot read /etc/prometheus/pve.yml"; done
    ;;
  useradd)
    if [ "${1:-}" = --help ]; then
      echo "Usage: useradd [options] LOGIN"
      [ -n "${STUB_OLD_SHADOW:-}" ] || echo "  -F, --add-subids-for-system   add entries to sub[ud]id even when adding a system user"
      exit 0
    fi
    record "$@"
    touch "$STUB_STATE/user-created"
    # As useradd --add-subids-for-system does: a range after those already assigned.
    case " $* " in *" --add-subids-for-system "*)
      for f in subuid subgid; do echo "$STUB_USER:165536:65536" >>"$STUB_ROOT/etc/$f"; done ;;
    esac
    ;;
  usermod)
    record "$@"
    args=("$@")
    for ((i = 0; i < ${#args[@]}; i++)); do
      case "${args[$i]}" in
        --add-subuids|--add-subgids)
          f=subuid; [ "${args[$i]}" = --add-subgids ] && f=subgid
          range=${args[$((i + 1))]}; first=${range%-*}; last=${range#*-}
          echo "$STUB_USER:$first:$((last - first + 1))" >>"$STUB_ROOT/etc/$f" ;;
        --groups) echo "$STUB_USER" >"$STUB_STATE/journal-member" ;;
      esac
    done
    ;;
  userdel)
    record "$@"
    rm -f "$STUB_STATE/user-created"
    ;;
  getent)
    case "$1 ${2:-}" in
      "passwd $STUB_USER")
        if [ -e "$STUB_STATE/user-created" ]; then
          echo "$STUB_USER:x:$STUB_UID:$STUB_UID:pve-exporter:/home/$STUB_USER:/usr/sbin/nologin"
        else exit 2; fi ;;
      "group systemd-journal")
        echo "systemd-journal:x:999:$(cat "$STUB_STATE/journal-member" 2>/dev/null || true)" ;;
      *) exit 2 ;;
    esac
    ;;
  *) echo "stub: unknown command $name" >&2; exit 1 ;;
esac
