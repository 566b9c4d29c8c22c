# Shared by the browser scripts (sourced): installing the browser toolchain, free ports, waiting.

# Installs what is missing (idempotent): clang, chromium, chromium-driver, the wasm32 target and
# wasm-bindgen-cli at the exact version of the wasm-bindgen crate in Cargo.lock.
web_install_missing() {
    local missing=()
    command -v clang >/dev/null || missing+=(clang)
    command -v chromium >/dev/null || missing+=(chromium)
    command -v chromedriver >/dev/null || missing+=(chromium-driver)
    command -v npm >/dev/null || missing+=(nodejs npm)
    if [ ${#missing[@]} -gt 0 ]; then
        echo "== installing ${missing[*]}"
        local sudo=""
        [ "$(id -u)" -eq 0 ] || sudo="sudo"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
    if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
        echo "== rustup target add wasm32-unknown-unknown"
        rustup target add wasm32-unknown-unknown
    fi
    local wb_version
    wb_version="$(awk '$0 == "name = \"wasm-bindgen\"" { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)"
    if [ -z "$wb_version" ]; then
        echo "wasm-bindgen not found in Cargo.lock" >&2
        return 1
    fi
    if [ "$(wasm-bindgen --version 2>/dev/null || true)" != "wasm-bindgen $wb_version" ] ||
        [ "$(wasm-bindgen-test-runner --version 2>/dev/null || true)" != "wasm-bindgen-test-runner $wb_version" ]; then
        echo "== cargo install wasm-bindgen-cli $wb_version"
        cargo install wasm-bindgen-cli --version "$wb_version" --locked
    fi
}

# A free TCP port on 127.0.0.1.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits (up to 60 s) for a line starting with $2 in file $1 and prints it.
wait_for_line() {
    local i
    for i in $(seq 600); do
        if grep -q "^$2" "$1" 2>/dev/null; then
            grep -m1 "^$2" "$1"
            return 0
        fi
        sleep 0.1
    done
    echo "timed out waiting for '$2' in $1" >&2
    return 1
}

# Waits (up to 30 s) for file $1 to be non-empty.
wait_for_file() {
    local i
    for i in $(seq 300); do
        [ -s "$1" ] && return 0
        sleep 0.1
    done
    echo "timed out waiting for $1" >&2
    return 1
}
