#!/usr/bin/env bash
# Installs what the tests need besides cargo, and does nothing when it is all there:
#   git and git-daemon (tests/sync.rs), Chromium (tests/dashboard.rs drives it headless over
#   --remote-debugging-pipe: no chromedriver), man and git's bash completion (tests/manual.rs),
#   unshare and ip (the agent CLIs run with loopback only), the Python MCP SDK at the versions in
#   tests/requirements.txt, in the virtual environment tests/.venv (tests/mcp.rs), Node and npm,
#   and the agent CLIs pinned in tests/clients/package-lock.json (tests/real_clients.rs);
#   libfaketime (the soak skews one clone's clock with it: tests/soak/run, tests/soak.rs).
# Uses apt-get (as root, or through sudo; no recommended packages: Chromium's alone pull in
# printing, samba and avahi), Python's venv and pip, and npm. Then: cargo test.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'tests/setup.sh: %s\n' "$*" >&2; }
as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"
    elif command -v sudo >/dev/null; then sudo "$@"
    else say "need root to run: $*"; return 1
    fi
}

venv=tests/.venv
requirements=tests/requirements.txt
# The venv holds a copy of the requirements it was made from: equal, and its Python still runs.
venv_current() {
    cmp -s "$requirements" "$venv/requirements.txt" && "$venv/bin/python" -c '' 2>/dev/null
}

packages=()
command -v git >/dev/null || packages+=(git)
if ! command -v git >/dev/null || [ ! -x "$(git --exec-path)/git-daemon" ]; then
    packages+=(git-daemon-sysvinit)
fi
command -v chromium >/dev/null || packages+=(chromium)
command -v man >/dev/null || packages+=(man-db)
[ -f /usr/share/bash-completion/completions/git ] || packages+=(bash-completion git)
command -v unshare >/dev/null || packages+=(util-linux)
command -v ip >/dev/null || packages+=(iproute2)
compgen -G '/usr/lib/*/faketime/libfaketime.so.1' >/dev/null || packages+=(libfaketime)
if ! venv_current; then
    command -v python3 >/dev/null || packages+=(python3)
    # Debian and Ubuntu ship venv's pip bootstrap apart from Python.
    python3 -c 'import ensurepip' 2>/dev/null || packages+=(python3-venv)
fi
command -v node >/dev/null || packages+=(nodejs)
command -v npm >/dev/null || packages+=(npm)
if [ ${#packages[@]} -gt 0 ]; then
    say "installing ${packages[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
fi

if ! venv_current; then
    say "installing the Python MCP SDK pinned in $requirements into $venv"
    python3 -m venv --clear "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --require-virtualenv \
        -r "$requirements"
    cp "$requirements" "$venv/requirements.txt"
fi

# The agent CLIs, at the versions in tests/clients/package-lock.json.
if ! npm ls --prefix tests/clients --depth=0 >/dev/null 2>&1; then
    say "installing the agent CLIs pinned in tests/clients (npm ci)"
    if ! npm ci --prefix tests/clients --no-audit --no-fund --loglevel=error >/dev/null; then
        say "could not install the agent CLIs from the npm registry: tests/real_clients.rs will fail until they are installed (run tests/setup.sh again)"
        # CI must run them; elsewhere the other tests can still run.
        [ "${CI:-}" = true ] && exit 1
    fi
fi
