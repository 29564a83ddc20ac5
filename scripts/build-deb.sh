#!/usr/bin/env bash
# Build the Debian package of tocsin: ./scripts/build-deb.sh  →  target/debian/tocsin_VERSION_ARCH.deb
# (prints its path). What it holds: the release binary, the tocsin system user (postinst),
# /etc/tocsin/tocsin.yaml and rules/default.yaml as conffiles (the shipped default with its
# store and outbox under /var/lib/tocsin), the systemd unit (packaging/tocsin.service), bash,
# zsh and fish completions and man pages made from the clap definitions.
# Needs dpkg-deb and dpkg-shlibdeps (dpkg-dev); no root.
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
arch=$(dpkg --print-architecture)
cargo build --release --quiet --bin tocsin
bin=target/release/tocsin

out=target/debian
root=$out/tocsin_${version}_${arch}
rm -rf "$root"
mkdir -p "$root/DEBIAN"

install -D -m 0755 "$bin" "$root/usr/bin/tocsin"
strip --strip-debug "$root/usr/bin/tocsin"

# The shipped default config, its paths made absolute for /etc/tocsin and /var/lib/tocsin.
install -d -m 0755 "$root/etc/tocsin/rules"
sed -e 's|^# tocsin.s embedded default.*|# tocsin, as the Debian package installs it: /etc/tocsin/tocsin.yaml (a conffile).|' \
    -e 's|^# Relative paths are relative to this file.s folder (config/).|# Relative paths are relative to /etc/tocsin. `tocsin check --config /etc/tocsin/tocsin.yaml`\n# checks it; `systemctl reload tocsin` reloads it.|' \
    -e 's|sqlite://\.\./data/tocsin\.db|sqlite:///var/lib/tocsin/tocsin.db|' \
    -e 's|"\.\./rules/\*\.yaml"|"rules/*.yaml"|' \
    -e 's|dir: \.\./data/outbox|dir: /var/lib/tocsin/outbox|' \
    config/tocsin.yaml >"$root/etc/tocsin/tocsin.yaml"
for must in 'sqlite:///var/lib/tocsin/tocsin.db' '"rules/\*.yaml"' 'dir: /var/lib/tocsin/outbox'; do
    grep -q "$must" "$root/etc/tocsin/tocsin.yaml" || {
        echo "build-deb: config/tocsin.yaml changed: $must not made" >&2
        exit 1
    }
done
install -m 0644 rules/default.yaml "$root/etc/tocsin/rules/default.yaml"
chmod 0644 "$root/etc/tocsin/tocsin.yaml"
printf '/etc/tocsin/tocsin.yaml\n/etc/tocsin/rules/default.yaml\n' >"$root/DEBIAN/conffiles"

install -D -m 0644 packaging/tocsin.service "$root/lib/systemd/system/tocsin.service"

# Completions and man pages from the binary's own clap definitions.
"$bin" completions bash | install -D -m 0644 /dev/stdin "$root/usr/share/bash-completion/completions/tocsin"
"$bin" completions zsh | install -D -m 0644 /dev/stdin "$root/usr/share/zsh/vendor-completions/_tocsin"
"$bin" completions fish | install -D -m 0644 /dev/stdin "$root/usr/share/fish/vendor_completions.d/tocsin.fish"
"$bin" man "$root/usr/share/man/man1"
gzip -9n "$root"/usr/share/man/man1/*.1
install -D -m 0644 packaging/debian/copyright "$root/usr/share/doc/tocsin/copyright"

# Shared-library dependencies as Debian computes them.
shlib=$(mktemp -d)
trap 'rm -rf "$shlib"' EXIT
mkdir -p "$shlib/debian"
printf 'Source: tocsin\n\nPackage: tocsin\nArchitecture: any\n' >"$shlib/debian/control"
depends=$(cd "$shlib" && dpkg-shlibdeps -O "$OLDPWD/$root/usr/bin/tocsin" 2>/dev/null |
    sed -n 's/^shlibs:Depends=//p')
[ -n "$depends" ] || { echo "build-deb: dpkg-shlibdeps found no dependency" >&2; exit 1; }

sed -e "s/@VERSION@/${version}-1/" -e "s/@ARCH@/${arch}/" -e "s/@DEPENDS@/${depends}/" \
    packaging/debian/control >"$root/DEBIAN/control"
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
echo "Installed-Size: $size" >>"$root/DEBIAN/control"
for script in postinst prerm postrm; do
    install -m 0755 "packaging/debian/$script" "$root/DEBIAN/$script"
done

deb=$out/tocsin_${version}-1_${arch}.deb
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"
