# Builds and installs the extension into the system PostgreSQL 15 and idsyncd into
# /usr/local/bin (needs root or sudo).
build_and_install() {
    local as_root=()
    [ "$(id -u)" -eq 0 ] || as_root=(sudo)
    make -s -j"$(nproc)" >/dev/null
    "${as_root[@]}" make -s install >/dev/null
}
