#!/bin/sh
# Assemble the runtime image's root filesystem in OUT from a slim Debian base:
#   packaging/runtime-root.sh DIST OUT
# DIST is the PyInstaller one-dir bundle (dist/customers-mngr-bundle). OUT receives:
#   /opt/customers-mngr/        the binary and its bundled libraries
#   the system libraries it loads that PyInstaller leaves to the OS (glibc's libc, libm,
#   libpthread, libdl, the loader; zlib for the bootloader) — found with ldd over every ELF
#   file of DIST, the bundled ones resolved inside DIST first, so nothing else slips in
#   /etc/ssl/certs/ca-certificates.crt, /etc/passwd + /etc/group (user app, uid 10001), /tmp
# Then it proves the result is complete: `chroot OUT customers-mngr version` must work.
# A library the binary needs and this misses fails the image build, not the first start.
set -eu
dist="$1"
out="$2"
app=/opt/customers-mngr

mkdir -p "$out$app" "$out/etc/ssl/certs" "$out/usr/lib/ssl" "$out/tmp"
chmod 1777 "$out/tmp"
cp -a "$dist/." "$out$app/"

libs="$(mktemp)"
find "$dist" -type f | while read -r file; do
    [ "$(head -c 4 "$file" | tail -c 3)" = "ELF" ] || continue
    case "$file" in
        # The bundled libraries find each other in _internal (PyInstaller preloads them);
        # the executable itself (the bootloader) is loaded by the system's loader alone.
        "$dist/_internal/"*) LD_LIBRARY_PATH="$dist/_internal" ldd "$file" 2>/dev/null || true ;;
        *) ldd "$file" 2>/dev/null || true ;;
    esac
done | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' | grep -v "^$dist/" >> "$libs" || true
# glibc dlopens libgcc_s when a thread is cancelled or unwinds (pthread_cancel, pthread_exit).
for extra in /lib/x86_64-linux-gnu/libgcc_s.so.1 /lib/aarch64-linux-gnu/libgcc_s.so.1; do
    [ -e "$extra" ] && echo "$extra" >> "$libs"
done
sort -u "$libs" | while read -r lib; do
    mkdir -p "$out$(dirname "$lib")"
    cp -L "$lib" "$out$lib"
    echo "runtime-root: $lib"
done
rm -f "$libs"

cp -L /etc/ssl/certs/ca-certificates.crt "$out/etc/ssl/certs/ca-certificates.crt"
ln -s /etc/ssl/certs/ca-certificates.crt "$out/usr/lib/ssl/cert.pem"
ln -s /etc/ssl/certs "$out/usr/lib/ssl/certs"
[ -f /etc/nsswitch.conf ] && cp /etc/nsswitch.conf "$out/etc/nsswitch.conf"
printf 'root:x:0:0:root:/root:/usr/sbin/nologin\napp:x:10001:10001:customers-mngr:/nonexistent:/usr/sbin/nologin\n' \
    > "$out/etc/passwd"
printf 'root:x:0:\napp:x:10001:\n' > "$out/etc/group"

chroot "$out" "$app/customers-mngr" version
