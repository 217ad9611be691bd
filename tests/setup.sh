#!/usr/bin/env bash
# Installs what the tests need besides cargo, and does nothing when it is all there:
#   git and git-daemon (tests/sync.rs), Chromium (tests/dashboard.rs), the Python MCP SDK
#   (tests/mcp.rs), man and git's bash completion (tests/manual.rs), unshare and ip (the agent
#   CLIs run with loopback only), Node and npm, and the agent CLIs pinned in
#   tests/clients/package-lock.json (tests/real_clients.rs).
# Uses apt-get (as root, or through sudo), pip and npm. Then: cargo test.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'tests/setup.sh: %s\n' "$*" >&2; }
as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"
    elif command -v sudo >/dev/null; then sudo "$@"
    else say "need root to run: $*"; return 1
    fi
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
command -v python3 >/dev/null || packages+=(python3)
have_mcp=0
python3 -c 'import mcp' 2>/dev/null && have_mcp=1
[ $have_mcp = 1 ] || python3 -m pip --version >/dev/null 2>&1 || packages+=(python3-pip)
command -v node >/dev/null || packages+=(nodejs)
command -v npm >/dev/null || packages+=(npm)
if [ ${#packages[@]} -gt 0 ]; then
    say "installing ${packages[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null
fi

if [ $have_mcp = 0 ]; then
    say "installing the Python MCP SDK"
    python3 -m pip install --quiet mcp 2>/dev/null ||
        python3 -m pip install --quiet --break-system-packages mcp
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
