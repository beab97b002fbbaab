#!/usr/bin/env bash
# Builds the .deb and installs it in a bare Debian 12 root (debootstrap minbase, as a newcomer's
# machine), then checks what the package promises:
#   - apt-get install ./weir_<version>_amd64.deb pulls every runtime library (dpkg-shlibdeps)
#   - /usr/bin/weir runs (--version), /etc/weir/weir.yaml is a conffile (0640 root:weir) and
#     passes check-config, the `weir` system user exists without a login, the unit is installed
#     with the paths it runs and enabled; a reinstall keeps an edited conffile
#   - weir runs the packaged config as user weir (on free ports), a message comes back through
#     its echo route (python3-websockets in the root), /healthz answers 200 on the admin port,
#     SIGTERM stops it with status 0
#   - apt-get remove keeps the conffile, apt-get purge deletes it; the maintainer scripts do not
#     fail without systemd
# Usage (as root): deploy/debian/test-deb.sh [BUILD_DIR]   (default: build/; it must be built)
# The bare root comes from /tmp/fresh-base.tar, made as ../shared/tools/fresh-debian.sh makes it
# (debootstrap, a few minutes, once) when missing. Needs debootstrap (installed if missing) and
# this machine's apt sources. Exits 77 (skipped) when not root.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-$here/build}" && pwd)
base=/tmp/fresh-base.tar
export DEBIAN_FRONTEND=noninteractive
start=$SECONDS
. "$here/deploy/lib/fresh-base.sh"

say() { echo "test-deb: $*"; }
fail() { say "FAILED: $*"; exit 1; }
[ "$(id -u)" = 0 ] || { say "skipped: needs root (chroot, mounts)"; exit 77; }

# --- the package --------------------------------------------------------------------------------
say "cpack -G DEB in $build"
out=$(cd "$build" && cpack -G DEB 2>&1) || { echo "$out"; fail "cpack"; }
deb=$(sed -n 's/^CPack: - package: \(.*\.deb\) generated\.$/\1/p' <<<"$out" | tail -1)
[ -f "$deb" ] || { echo "$out"; fail "cpack made no .deb"; }
case $(basename "$deb") in weir_*_amd64.deb) ;; *) fail "unexpected package name $deb" ;; esac
deb_bytes=$(stat -c %s "$deb")
installed_kib=$(dpkg-deb -f "$deb" Installed-Size)
say "$(basename "$deb"): $((deb_bytes / 1024)) KiB (.deb), $installed_kib KiB installed"
say "Depends: $(dpkg-deb -f "$deb" Depends)"

# --- a bare Debian 12 root (the base as fresh-debian.sh makes it, shared through a lock) -------------
ensure_fresh_base "$base"

root=$(mktemp -d /tmp/weir-deb-root.XXXXXX)
weir_pid=
cleanup() {
  local rc=$?
  if [ -n "$weir_pid" ]; then kill -KILL "$weir_pid" 2>/dev/null || true; fi
  for m in proc sys dev; do umount -l "$root/$m" 2>/dev/null || true; done
  # Never delete through a mount that is still there (/dev and /sys are the host's).
  if grep -q " $root/" /proc/self/mounts; then
    say "left $root (still has mounts)"
  elif [ $rc -ne 0 ] && [ -z "${CI:-}" ]; then
    say "left $root for a look (rm -rf --one-file-system $root)"
  else
    rm -rf --one-file-system "$root"
  fi
}
trap cleanup EXIT
say "root $root from $base"
tar -C "$root" -xf "$base"
cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
debian_hosts >"$root/etc/hosts"
mount -t proc proc "$root/proc"; mount --rbind /sys "$root/sys"; mount --rbind /dev "$root/dev"
inroot() { chroot "$root" /usr/bin/env -i HOME=/root PATH=/usr/sbin:/usr/bin:/sbin:/bin TERM=dumb \
  DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 "$@"; }
[ ! -d "$root/run/systemd/system" ] || fail "the root claims a running systemd"

# --- install ---------------------------------------------------------------------------------------
cp "$deb" "$root/tmp/"
say "apt-get install ./$(basename "$deb") in the root"
inroot apt-get update -qq >/dev/null || fail "apt-get update in the root"
t=$SECONDS
inroot bash -c "cd /tmp && apt-get install -y --no-install-recommends ./$(basename "$deb")" \
  >"$root/tmp/apt-install.log" 2>&1 || { cat "$root/tmp/apt-install.log"; fail "apt-get install"; }
say "installed in $((SECONDS - t)) s: $(grep -o '[0-9]* newly installed' "$root/tmp/apt-install.log")"

# --- what the package installed ------------------------------------------------------------------
[ -x "$root/usr/bin/weir" ] || fail "/usr/bin/weir missing"
version=$(inroot /usr/bin/weir --version) || fail "weir --version"
[ "$version" = "weir $(dpkg-deb -f "$deb" Version)" ] || fail "weir --version says '$version'"
say "$version"
grep -qx /etc/weir/weir.yaml "$root/var/lib/dpkg/info/weir.conffiles" || fail "/etc/weir/weir.yaml is not a conffile"
passwd=$(inroot getent passwd weir) || fail "no user weir"
[ "$(cut -d: -f7 <<<"$passwd")" = /usr/sbin/nologin ] || fail "weir has a login shell: $passwd"
[ "$(cut -d: -f3 <<<"$passwd")" -lt 1000 ] || fail "weir is not a system user: $passwd"
[ "$(inroot stat -c '%a %U:%G' /etc/weir/weir.yaml)" = "640 root:weir" ] ||
  fail "/etc/weir/weir.yaml is $(inroot stat -c '%a %U:%G' /etc/weir/weir.yaml), not 640 root:weir"
unit=$root/lib/systemd/system/weir.service
[ -f "$unit" ] || fail "unit not installed"
grep -qx 'ExecStart=/usr/bin/weir run -c /etc/weir/weir.yaml' "$unit" || fail "the unit runs something else"
grep -qx 'User=weir' "$unit" || fail "the unit runs as another user"
inroot /usr/bin/weir check-config -c /etc/weir/weir.yaml || fail "check-config of the packaged config"
# Enabled by postinst as dh_installsystemd does (deb-systemd-helper works without systemd).
wants=$root/etc/systemd/system/multi-user.target.wants/weir.service
[ -L "$wants" ] || fail "the unit is not enabled (no $wants)"
# An upgrade (here: the same version again) keeps an edited conffile and its group.
echo "# edited by test-deb" >>"$root/etc/weir/weir.yaml"
inroot dpkg -i --force-confold "/tmp/$(basename "$deb")" >"$root/tmp/dpkg-reinstall.log" 2>&1 ||
  { cat "$root/tmp/dpkg-reinstall.log"; fail "reinstalling over an edited conffile"; }
tail -1 "$root/etc/weir/weir.yaml" | grep -qx "# edited by test-deb" || fail "reinstalling replaced the edited conffile"
[ "$(inroot stat -c '%a %U:%G' /etc/weir/weir.yaml)" = "640 root:weir" ] || fail "reinstalling changed the config's mode"
say "enabled; a reinstall keeps an edited /etc/weir/weir.yaml"

# --- run it as weir ----------------------------------------------------------------------------------
say "apt-get install python3-websockets in the root (the test client)"
inroot apt-get install -y -qq --no-install-recommends python3-websockets >/dev/null 2>&1 ||
  fail "apt-get install python3-websockets"
# The root shares this machine's network: two ports free here are free there.
read -r port admin_port < <(inroot python3 -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*(x.getsockname()[1] for x in s))')
sed -E "s/^(    port: )8080$/\1$port/; s/^(  port: )9901$/\1$admin_port/" \
  "$root/etc/weir/weir.yaml" >"$root/tmp/weir-test.yaml"
grep -q "port: $port\$" "$root/tmp/weir-test.yaml" && grep -q "port: $admin_port\$" "$root/tmp/weir-test.yaml" ||
  fail "could not set the ports in a copy of the config"
chmod 644 "$root/tmp/weir-test.yaml"
say "weir run as user weir on 127.0.0.1:$port (admin $admin_port)"
# chroot, env and setpriv each exec the next: $! is weir's pid.
chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 \
  setpriv --reuid=weir --regid=weir --init-groups --inh-caps=-all \
  /usr/bin/weir run -c /tmp/weir-test.yaml >"$root/tmp/weir.log" 2>&1 &
weir_pid=$!
up=
for _ in $(seq 100); do
  kill -0 "$weir_pid" 2>/dev/null || { cat "$root/tmp/weir.log"; fail "weir exited"; }
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then up=1; break; fi
  sleep 0.1
done
[ -n "$up" ] || { cat "$root/tmp/weir.log"; fail "weir did not listen on $port"; }
[ "$(readlink "/proc/$weir_pid/exe")" = "$root/usr/bin/weir" ] || fail "pid $weir_pid is not weir"
[ "$(awk '/^Uid:/{print $2}' "/proc/$weir_pid/status")" = "$(cut -d: -f3 <<<"$passwd")" ] ||
  fail "weir does not run as user weir"
inroot python3 -c '
import asyncio, sys, websockets
async def main():
    async with websockets.connect(sys.argv[1]) as ws:
        await ws.send("hello from the .deb")
        reply = await asyncio.wait_for(ws.recv(), 5)
        assert reply == "hello from the .deb", reply
        print("test-deb: echoed:", reply)
asyncio.run(main())' "ws://127.0.0.1:$port/echo" || { cat "$root/tmp/weir.log"; fail "no echo through weir"; }
health=$(exec 3<>"/dev/tcp/127.0.0.1/$admin_port" &&
  printf 'GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' >&3 && head -1 <&3) || true
[[ $health == "HTTP/1.1 200"* ]] || fail "/healthz answered '$health'"
say "/healthz: ${health%$'\r'}"
kill -TERM "$weir_pid"
rc=0; wait "$weir_pid" || rc=$?
weir_pid=
[ $rc = 0 ] || { cat "$root/tmp/weir.log"; fail "weir exited with $rc on SIGTERM"; }
say "stopped by SIGTERM (status 0)"

# --- remove, purge ------------------------------------------------------------------------------------
inroot apt-get remove -y -qq weir >"$root/tmp/apt-remove.log" 2>&1 || { cat "$root/tmp/apt-remove.log"; fail "apt-get remove"; }
[ ! -e "$root/usr/bin/weir" ] || fail "/usr/bin/weir left after remove"
[ ! -e "$unit" ] || fail "the unit left after remove"
[ -f "$root/etc/weir/weir.yaml" ] || fail "remove deleted the conffile"
inroot dpkg-query -W -f='${Status}\n' weir | grep -q 'config-files' || fail "weir not in config-files state"
inroot apt-get purge -y -qq weir >"$root/tmp/apt-purge.log" 2>&1 || { cat "$root/tmp/apt-purge.log"; fail "apt-get purge"; }
[ ! -e "$root/etc/weir/weir.yaml" ] || fail "purge left /etc/weir/weir.yaml"
[ ! -e "$wants" ] && [ ! -L "$wants" ] || fail "the unit is still enabled after purge"
say "apt-get remove kept the conffile, purge deleted it"
say "ok in $((SECONDS - start)) s: $(basename "$deb") $deb_bytes bytes, Installed-Size $installed_kib KiB"
