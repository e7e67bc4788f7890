# Helpers sourced by the scripts in this folder (not run on its own).

# Print a step the way every script here does, on stderr so stdout stays clean.
say() { printf '[hookshelf] %s\n' "$*" >&2; }

die() {
    say "error: $*"
    exit 1
}

# apt-get install, with one `apt-get update` per process, non-interactive. Needs root:
# the README's commands are meant to run as root on a fresh Debian machine.
_APT_UPDATED=0
apt_install() {
    command -v apt-get >/dev/null 2>&1 \
        || die "need to install $*, but apt-get is not available: install them by hand"
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 || die "need root (or sudo) to apt-get install $*"
        sudo=(sudo)
    fi
    export DEBIAN_FRONTEND=noninteractive
    if [ "$_APT_UPDATED" -eq 0 ]; then
        say "apt-get update"
        "${sudo[@]}" apt-get update -qq
        _APT_UPDATED=1
    fi
    say "apt-get install $*"
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# sha256 of the given files' contents plus any extra words (e.g. the repo path).
fingerprint() {
    local extra=$1
    shift
    { printf '%s\n' "$extra"; cat "$@"; } | sha256sum | cut -d' ' -f1
}
