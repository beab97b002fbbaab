#!/usr/bin/env bash
# Builds the container image (deploy/container/Containerfile) with buildah and checks it:
#   - the base image localhost/debian12-minbase is made from /tmp/fresh-base.tar (the bare
#     Debian 12 root of ../shared/tools/fresh-debian.sh; made with debootstrap if missing)
#   - buildah build (chroot isolation, vfs storage: works inside a VM or container without
#     overlay or user namespaces) -> localhost/weir:test, whose size is printed
#   - the image's user is 10001, its entrypoint /usr/bin/weir, `weir --version` runs, the
#     shipped config passes check-config
#   - weir runs in a container of the image on free ports (chroot isolation shares this
#     machine's network), a message sent from this machine to ws://127.0.0.1:<port>/echo comes
#     back, the image's own HEALTHCHECK command passes inside the container, SIGTERM stops it
#     (status 0), and the HEALTHCHECK then fails
# Usage (as root, from anywhere): deploy/container/test-image.sh
# The build stage compiles Weir (Release, -j2): several minutes on 2 cores the first time;
# reruns reuse the layers, and ccache (a cache mount) after a source change. Installs buildah
# if missing. Exits 77 (skipped) when not root.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
base_tar=/tmp/fresh-base.tar
base_image=localhost/debian12-minbase
image=${WEIR_IMAGE:-localhost/weir:test}
sources=/etc/apt/sources.list.d/debian.sources
export DEBIAN_FRONTEND=noninteractive
export BUILDAH_ISOLATION=chroot STORAGE_DRIVER=vfs
start=$SECONDS
. "$here/deploy/lib/fresh-base.sh"

say() { echo "test-image: $*"; }
fail() { say "FAILED: $*"; exit 1; }
[ "$(id -u)" = 0 ] || { say "skipped: needs root"; exit 77; }
# vfs storage copies every layer whole: the build and run stages take about 6 GB.
mkdir -p /var/lib/containers
free_gb=$(df --output=avail -BG /var/lib/containers | tail -1 | tr -dc 0-9)
[ "$free_gb" -ge 10 ] || { say "skipped: ${free_gb} GB free under /var/lib/containers, needs 10"; exit 77; }
bh() { buildah --storage-driver vfs "$@"; }

if ! command -v buildah >/dev/null; then
  say "installing buildah (apt-get install buildah)"
  apt-get install -y -qq -o DPkg::Lock::Timeout=300 buildah >/dev/null 2>&1 ||
    { apt-get update -qq && apt-get install -y -qq -o DPkg::Lock::Timeout=300 buildah >/dev/null; } || fail "apt-get install buildah"
fi
say "$(buildah --version)"

# --- the base image: a debootstrap minbase Debian 12 (as fresh-debian.sh makes it) ------------------
if ! bh inspect --type image "$base_image" >/dev/null 2>&1; then
  ensure_fresh_base "$base_tar"
  say "making $base_image from $base_tar"
  c=$(bh from scratch)
  bh add "$c" "$base_tar" / >/dev/null
  # debootstrap writes no /etc/hosts; every installed Debian has one
  debian_hosts >/tmp/weir-image-hosts.$$
  bh copy "$c" /tmp/weir-image-hosts.$$ /etc/hosts >/dev/null; rm -f /tmp/weir-image-hosts.$$
  # Slim as Debian's own bookworm-slim images are: no package caches or lists (apt-get update
  # fetches them; scripts/setup does), no docs, man pages or translations (kept out of later
  # installs by a dpkg path-exclude).
  bh run "$c" -- sh -c '
    apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
    printf "%s\n" "path-exclude /usr/share/doc/*" "path-include /usr/share/doc/*/copyright" \
      "path-exclude /usr/share/man/*" "path-exclude /usr/share/groff/*" "path-exclude /usr/share/info/*" \
      "path-exclude /usr/share/lintian/*" "path-exclude /usr/share/linda/*" \
      "path-exclude /usr/share/locale/*" "path-include /usr/share/locale/locale.alias" \
      >/etc/dpkg/dpkg.cfg.d/slim
    find /usr/share/doc -mindepth 1 ! -type d ! -name copyright -delete
    find /usr/share/doc -mindepth 1 -type d -empty -delete
    rm -rf /usr/share/man/* /usr/share/groff/* /usr/share/info/* /usr/share/lintian/* /usr/share/linda/*
    find /usr/share/locale -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +' ||
    fail "slimming the base image"
  bh config --cmd /bin/bash --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --label org.opencontainers.image.description="Debian 12 (bookworm) debootstrap minbase, slim" "$c"
  bh commit -q --rm "$c" "$base_image" >/dev/null
fi

# --- build ---------------------------------------------------------------------------------------------
say "buildah build -f deploy/container/Containerfile -t $image (compiles Weir: minutes the first time)"
t=$SECONDS
bh build --isolation chroot --format docker --layers -f "$here/deploy/container/Containerfile" \
  -t "$image" "$here" >/tmp/weir-image-build.log 2>&1 ||
  { tail -40 /tmp/weir-image-build.log; fail "buildah build (log: /tmp/weir-image-build.log)"; }
build_s=$((SECONDS - t))
say "built in $build_s s"
# vfs keeps every layer as a full copy (about 1 GB per step of the build stage): drop the
# untagged layers of earlier builds, keep this build's (the cache of the next run).
keep=" $(grep -oE '^--> (Using cache )?[0-9a-f]{11,}' /tmp/weir-image-build.log | awk '{print substr($NF, 1, 11)}' | tr '\n' ' ')"
for _ in 1 2 3; do
  for id in $(bh images -a --noheading --format '{{.ID}}:{{.Name}}' | sed -n 's/^\([0-9a-f]*\):<none>$/\1/p'); do
    [[ $keep == *" ${id:0:11} "* ]] || bh rmi "$id" >/dev/null 2>&1 || true
  done
done
bh images "$image"
size=$(bh images --format '{{.Size}}' "$image" | head -1)
base_size=$(bh images --format '{{.Size}}' "$base_image" | head -1)
say "image size: $size (base $base_image: $base_size)"

# --- what the image says about itself --------------------------------------------------------------
# (buildah 1.28's --format has no json function: the whole inspect output, read by python3;
# Debian's /usr/bin/python3, which has python3-websockets, rather than whatever is first on PATH)
hc=$(bh inspect --type image "$image" | /usr/bin/python3 -c '
import json, sys
c = json.load(sys.stdin)["Docker"]["config"]
want = {"User": "10001:10001", "Entrypoint": ["/usr/bin/weir"], "Cmd": ["run", "-c", "/etc/weir/weir.yaml"],
        "StopSignal": "SIGTERM", "ExposedPorts": {"8080/tcp": {}, "9901/tcp": {}}}
bad = [f"{k} is {c.get(k)!r}, want {v!r}" for k, v in want.items() if c.get(k) != v]
test = (c.get("Healthcheck") or {}).get("Test") or []
if test[:3] != ["CMD", "/bin/bash", "-c"] or len(test) != 4:
    bad.append(f"HEALTHCHECK is {test!r}")
if bad:
    sys.exit("; ".join(bad))
print(test[3])') || fail "the image's config"
say "image config: user 10001:10001, entrypoint /usr/bin/weir, cmd run -c /etc/weir/weir.yaml, SIGTERM, 8080+9901, HEALTHCHECK"

# --- run it --------------------------------------------------------------------------------------------------
ctr=$(bh from -q "$image")
weir_pid=
cleanup() {
  if [ -n "$weir_pid" ]; then kill -KILL "$weir_pid" 2>/dev/null || true; fi
  bh rm "$ctr" >/dev/null 2>&1 || true
  rm -f "/tmp/weir-image-test.$$.yaml"
}
trap cleanup EXIT
version=$(bh run "$ctr" -- /usr/bin/weir --version) || fail "weir --version in the image"
say "$version"
[ "$(bh run "$ctr" -- id -u)" = 10001 ] || fail "buildah run is not uid 10001"
bh run "$ctr" -- /usr/bin/weir check-config -c /etc/weir/weir.yaml >/dev/null || fail "check-config of the image's config"
shipped=$(bh run "$ctr" -- cat /etc/weir/weir.yaml)
grep -q '^  - address: 0.0.0.0 ' <<<"$shipped" || fail "the image's listener is not on 0.0.0.0"
grep -q '^  address: 127.0.0.1$' <<<"$shipped" || fail "the image's admin listener is not on 127.0.0.1"

# Free ports on this machine, which the container shares (chroot isolation: no network namespace).
read -r port admin_port < <(/usr/bin/python3 -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*(x.getsockname()[1] for x in s))')
conf=/tmp/weir-image-test.$$.yaml
sed -E "s/^(    port: )8080$/\1$port/; s/^(  port: )9901$/\1$admin_port/" <<<"$shipped" >"$conf"
grep -q "port: $port\$" "$conf" && grep -q "port: $admin_port\$" "$conf" || fail "could not set the ports"
chmod 644 "$conf"
bh copy "$ctr" "$conf" /tmp/weir-test.yaml >/dev/null
say "weir run in the container: 0.0.0.0:$port (admin 127.0.0.1:$admin_port)"
bh run "$ctr" -- /usr/bin/weir run -c /tmp/weir-test.yaml >/tmp/weir-image-run.log 2>&1 &
run_pid=$!
up=
for _ in $(seq 100); do
  kill -0 "$run_pid" 2>/dev/null || { cat /tmp/weir-image-run.log; fail "buildah run exited"; }
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then up=1; break; fi
  sleep 0.1
done
[ -n "$up" ] || { cat /tmp/weir-image-run.log; fail "weir did not listen on $port"; }
# buildah run forks the command: find weir among its descendants, by pid, to signal it.
for p in $(pgrep -f -- "/usr/bin/weir run -c /tmp/weir-test.yaml"); do
  [ "$(awk '/^Uid:/{print $2}' "/proc/$p/status" 2>/dev/null)" = 10001 ] && weir_pid=$p
done
[ -n "$weir_pid" ] || fail "no weir process with uid 10001"
say "weir is pid $weir_pid (uid 10001), reached from this machine: the container shares its network"
/usr/bin/python3 - "ws://127.0.0.1:$port/echo" <<'EOF' || { cat /tmp/weir-image-run.log; fail "no echo through the container"; }
import asyncio, sys, websockets
async def main():
    async with websockets.connect(sys.argv[1]) as ws:
        await ws.send("hello from the host")
        reply = await asyncio.wait_for(ws.recv(), 5)
        assert reply == "hello from the host", reply
        print("test-image: echoed:", reply)
asyncio.run(main())
EOF
# The image's HEALTHCHECK, run as the runtime would (inside the container), on the test's port.
bh run "$ctr" -- /bin/bash -c "${hc//9901/$admin_port}" || fail "the HEALTHCHECK command failed"
say "HEALTHCHECK passes: $hc"
kill -TERM "$weir_pid"
rc=0; wait "$run_pid" || rc=$?
weir_pid=
[ $rc = 0 ] || { cat /tmp/weir-image-run.log; fail "weir exited with $rc on SIGTERM"; }
say "stopped by SIGTERM (status 0)"
if bh run "$ctr" -- /bin/bash -c "${hc//9901/$admin_port}" 2>/dev/null; then
  fail "the HEALTHCHECK command passes with weir stopped"
fi
say "HEALTHCHECK fails with weir stopped"
say "ok in $((SECONDS - start)) s (build $build_s s): $image $size"
