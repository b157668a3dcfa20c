#!/usr/bin/env bash
# make install / make uninstall, and mounting through the installed
# mount.fuse.stepfs helper: directly (as mount(8) would call it), then for
# real with `mount -t fuse.stepfs` and an fstab line. mount(8) only looks
# for helpers in /sbin, so that last part runs in a private mount namespace
# (unshare -m) where /sbin is overlaid with a tmpfs: nothing is written to
# the real /sbin and nothing outlives the namespace, even if the test is
# killed. It is skipped when unshare is not allowed.
. "$(dirname "$0")/lib.sh"

MAKE="make -C $ROOT BUILD=$BUILD"
SRC=$TMP/src
mkdir -p "$SRC/sub"
seq 1 5000 >"$SRC/sub/numbers.txt"
echo '{"hello": "world"}' >"$SRC/hello.json"
check "pack a small store" "$STEPSTORE" pack --quiet "$SRC" "$TMP/store.stepfs"
STORE=$TMP/store.stepfs

# ---- staged install: DESTDIR + PREFIX=/usr -------------------------------
STAGE=$TMP/root
check "make install DESTDIR=... PREFIX=/usr" $MAKE install DESTDIR="$STAGE" PREFIX=/usr
for f in usr/bin/stepstore usr/bin/stepfs sbin/mount.fuse.stepfs; do
	check "staged: $f is executable" test -x "$STAGE/$f"
done
for f in usr/share/man/man1/stepfs.1 usr/share/man/man1/stepstore.1 usr/share/doc/stepfs/config.example.yaml; do
	check "staged: $f installed" test -f "$STAGE/$f"
done
check "staged: the helper runs /usr/bin/stepfs" grep -qx "STEPFS='/usr/bin/stepfs'" "$STAGE/sbin/mount.fuse.stepfs"
check "staged: the helper is valid sh" sh -n "$STAGE/sbin/mount.fuse.stepfs"
for page in stepfs stepstore; do
	check "staged: man -l $page.1 renders without warnings" sh -c "
		out=\$(MANWIDTH=80 man --warnings -l '$STAGE/usr/share/man/man1/$page.1' 2>&1 >/dev/null)
		[ -z \"\$out\" ] || { echo \"\$out\"; exit 1; }
		MANWIDTH=80 man -l '$STAGE/usr/share/man/man1/$page.1' 2>/dev/null | grep -q 'EXIT STATUS'"
done
check "make uninstall DESTDIR=... PREFIX=/usr" $MAKE uninstall DESTDIR="$STAGE" PREFIX=/usr
check "staged: uninstall leaves no file behind" sh -c "[ -z \"\$(find '$STAGE' ! -type d)\" ] || { find '$STAGE' ! -type d; exit 1; }"

# ---- a real install into a temporary prefix ------------------------------
PREFIX_DIR=$TMP/prefix
check "make install PREFIX=$PREFIX_DIR" $MAKE install PREFIX="$PREFIX_DIR"
check "prefix: the helper stays inside the prefix" test -x "$PREFIX_DIR/sbin/mount.fuse.stepfs"
check "prefix: nothing was put in /sbin" sh -c "! grep -qs \"$PREFIX_DIR\" /sbin/mount.fuse.stepfs"
check "prefix: installed stepstore runs" "$PREFIX_DIR/bin/stepstore" --version
check "prefix: installed stepfs runs" "$PREFIX_DIR/bin/stepfs" --version
check "prefix: the example configuration loads and sets every key from the file" sh -c "
	out=\$('$PREFIX_DIR/bin/stepstore' config --config '$PREFIX_DIR/share/doc/stepfs/config.example.yaml') || exit 1
	! printf '%s\n' \"\$out\" | grep -q '# default\$'"

# The helper, called the way mount(8) calls it.
MNT=$TMP/mnt-helper
mkdir -p "$MNT"
MOUNTS+=("$MNT"); MOUNT_PIDS+=("")
check "helper: mounts the store" "$PREFIX_DIR/sbin/mount.fuse.stepfs" "$STORE" "$MNT" -o ro,nofail,_netdev -t fuse.stepfs
check "helper: the mount is up" mountpoint -q "$MNT"
check "helper: listed as fuse.stepfs with the store as source" \
	grep -q "^$STORE $MNT fuse.stepfs ro," /proc/self/mounts
check "helper: files read back byte for byte" cmp "$SRC/sub/numbers.txt" "$MNT/source/sub/numbers.txt"
check "helper: the installed stepfs serves it" sh -c "pgrep -f '^$PREFIX_DIR/bin/stepfs $STORE' >/dev/null"
check "helper: unmount" fusermount3 -u "$MNT"
check "helper: -f (fake) mounts nothing" sh -c "'$PREFIX_DIR/sbin/mount.fuse.stepfs' '$STORE' '$MNT' -f -o ro && ! mountpoint -q '$MNT'"
check_fails "helper: a missing store fails" "$PREFIX_DIR/sbin/mount.fuse.stepfs" "$TMP/none.stepfs" "$MNT" -o ro
check "helper: nothing left mounted" sh -c "! mountpoint -q '$MNT'"

# ---- mount(8) and fstab, in a private mount namespace ----------------------
if [ "$(id -u)" -eq 0 ] && unshare -m --propagation private true 2>/dev/null; then
	SBIN=$(readlink -f /sbin)
	cat >"$TMP/ns.sh" <<EOF
set -u
result() { if [ "\$1" -eq 0 ]; then echo "PASS \$2"; else echo "FAIL \$2"; fi; }
mnts=()
trap 'for m in "\${mnts[@]}"; do umount "\$m" 2>/dev/null || umount -l "\$m" 2>/dev/null; done' EXIT
mkdir -p "$TMP/realsbin" "$TMP/mnt-type" "$TMP/mnt-fstab"
mount --bind "$SBIN" "$TMP/realsbin" && mount -t tmpfs -o mode=0755 stepfs-test "$SBIN" || { echo "FAIL overlay $SBIN"; exit 1; }
for f in "$TMP/realsbin"/*; do ln -s "\$f" "$SBIN/"; done
install -m 755 "$PREFIX_DIR/sbin/mount.fuse.stepfs" "$SBIN/mount.fuse.stepfs"

mnts+=("$TMP/mnt-type")
mount -t fuse.stepfs "$STORE" "$TMP/mnt-type" -o ro,allow_other; result \$? "mount -t fuse.stepfs STORE MNT -o ro,allow_other"
cmp -s "$SRC/hello.json" "$TMP/mnt-type/source/hello.json"; result \$? "mount -t: files read back"
grep -q "^$STORE $TMP/mnt-type fuse.stepfs ro,.*allow_other" /proc/self/mounts; result \$? "mount -t: fuse.stepfs, read-only, allow_other"
umount "$TMP/mnt-type"; result \$? "umount"

echo "$STORE $TMP/mnt-fstab fuse.stepfs ro,allow_other,nofail 0 0" >"$TMP/fstab"
mount --bind "$TMP/fstab" /etc/fstab; result \$? "private fstab"
mnts+=("$TMP/mnt-fstab")
mount "$TMP/mnt-fstab"; result \$? "mount MNT with an fstab line STORE MNT fuse.stepfs ro,allow_other,nofail 0 0"
cmp -s "$SRC/sub/numbers.txt" "$TMP/mnt-fstab/source/sub/numbers.txt"; result \$? "fstab mount: files read back"
umount "$TMP/mnt-fstab"; result \$? "fstab mount: umount"
EOF
	while read -r verdict desc; do
		case $verdict in
		PASS) ok "namespace: $desc" ;;
		FAIL) not_ok "namespace: $desc" ;;
		*) echo "# $verdict $desc" ;;
		esac
	done < <(unshare -m --propagation private bash "$TMP/ns.sh" 2>&1)
	check "the real /sbin has no mount.fuse.stepfs from this test" sh -c "! grep -qs \"$PREFIX_DIR\" /sbin/mount.fuse.stepfs"
else
	ok "# SKIP mount -t fuse.stepfs and fstab: needs root and unshare -m"
fi

check "make uninstall PREFIX=$PREFIX_DIR" $MAKE uninstall PREFIX="$PREFIX_DIR"
check "prefix: uninstall leaves no file behind" sh -c "[ -z \"\$(find '$PREFIX_DIR' ! -type d)\" ] || { find '$PREFIX_DIR' ! -type d; exit 1; }"

finish
