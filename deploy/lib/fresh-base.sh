# Sourced by the packaging tests (deploy/debian/test-deb.sh, deploy/container/test-image.sh).
# ensure_fresh_base TAR: makes TAR, a bare Debian 12 root (debootstrap --variant=minbase
# bookworm with ca-certificates and this machine's apt sources, as
# ../shared/tools/fresh-debian.sh makes it), unless it is there. A few minutes, once; a lock
# lets two tests share it. Needs say/fail from the caller.
ensure_fresh_base() {
  local tar=$1 sources=/etc/apt/sources.list.d/debian.sources mirror
  (
    flock 9
    [ -f "$tar" ] && exit 0
    say "making $tar (debootstrap --variant=minbase bookworm; a few minutes, once)"
    command -v debootstrap >/dev/null || apt-get install -y -qq debootstrap >/dev/null
    mirror=$(awk '/^URIs:/{print $2; exit}' "$sources")
    rm -rf /tmp/fresh-mk && mkdir -p /tmp/fresh-mk
    debootstrap --variant=minbase --include=ca-certificates bookworm /tmp/fresh-mk "$mirror" \
      >/tmp/fresh-debootstrap.log 2>&1 || fail "debootstrap (log: /tmp/fresh-debootstrap.log)"
    rm -f /tmp/fresh-mk/etc/apt/sources.list; mkdir -p /tmp/fresh-mk/etc/apt/sources.list.d
    cp "$sources" /tmp/fresh-mk/etc/apt/sources.list.d/debian.sources
    tar -C /tmp/fresh-mk -cf "$tar.part" . && mv "$tar.part" "$tar" && rm -rf /tmp/fresh-mk
  ) 9>/tmp/fresh-base.lock
}

# The /etc/hosts every installed Debian has (debootstrap writes none): localhost is also ::1.
debian_hosts() { printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n'; }
