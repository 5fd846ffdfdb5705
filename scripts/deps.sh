# Sourced by scripts/test.sh and scripts/bench.sh.
#
# rmsfuse_need_packages PKG...: installs the Debian packages that are
# missing (only those), when running as root; otherwise names them and
# fails.  Packages of a foreign architecture (name:arm64) enable it first.
rmsfuse_need_packages() {
    local missing=() pkg arch
    for pkg in "$@"; do
        # One status line per installed architecture (check and check:arm64 both answer to "check").
        case "$(dpkg-query -W -f='${Status}\n' "$pkg" 2>/dev/null || true)" in
            *"install ok installed"*) ;;
            *) missing+=("$pkg") ;;
        esac
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        echo "rmsfuse: missing Debian packages: ${missing[*]}" >&2
        echo "rmsfuse: run as root, or: sudo apt-get install -y ${missing[*]}" >&2
        return 1
    fi
    for pkg in "${missing[@]}"; do
        case "$pkg" in
            *:*) arch=${pkg#*:}
                 dpkg --print-foreign-architectures | grep -x "$arch" >/dev/null || dpkg --add-architecture "$arch" ;;
        esac
    done
    echo "rmsfuse: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
