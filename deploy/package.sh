#!/usr/bin/env bash
# Builds the Debian packages farm-coordinator, farm-agent and farmctl (Debian 12) into OUT_DIR.
#
#   ./deploy/package.sh [--no-build] [OUT_DIR]
#
# OUT_DIR defaults to $FARM_BUILD_DIR/packages (build/packages). First builds the three binaries
# in $FARM_BUILD_DIR (default build; Ninja, ccache, RelWithDebInfo unless $FARM_BUILD_TYPE says
# otherwise), as tests/run.sh does; --no-build packages what $FARM_BUILD_DIR/bin holds as it is
# (the tests, whose build made the binaries already). Each package is staged by hand and built
# with dpkg-deb: binaries stripped into /usr/bin with their manual pages, the systemd units (deploy/systemd/) in
# /lib/systemd/system, /etc/default/NAME and the example configs (deploy/config/, when present)
# in /etc/farm as conffiles, maintainer scripts from deploy/debian/NAME/, and library
# dependencies computed by dpkg-shlibdeps. Prints the paths of the three .deb files.
# README: "Installing on build machines".
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

usage() { sed -n '2,4p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
build=1
out_dir=
for arg in "$@"; do
  case $arg in
    --no-build) build=0 ;;
    -h | --help) usage ;;
    -*) echo "package.sh: unknown flag $arg" >&2; usage ;;
    *)
      [[ -z $out_dir ]] || { echo "package.sh: more than one OUT_DIR" >&2; usage; }
      out_dir=$arg
      ;;
  esac
done
build_dir=${FARM_BUILD_DIR:-build}
out_dir=${out_dir:-$build_dir/packages}

if ((build)); then
  ./deploy/install-deps.sh
  export CCACHE_DIR=${CCACHE_DIR:-$HOME/.cache/farm-ccache}
  if [[ ! -f $build_dir/CMakeCache.txt ]]; then
    cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE="${FARM_BUILD_TYPE:-RelWithDebInfo}"
  fi
  cmake --build "$build_dir" -j "$(nproc)" --target farm-coordinator farm-agent farmctl
fi
bin_dir=$build_dir/bin
for b in farm-coordinator farm-agent farmctl; do
  [[ -x $bin_dir/$b ]] || { echo "package.sh: $bin_dir/$b is missing; build it first" >&2; exit 1; }
done
for tool in dpkg-deb dpkg-shlibdeps strip; do
  command -v "$tool" >/dev/null || { echo "package.sh: $tool is missing (apt-get install dpkg-dev binutils)" >&2; exit 1; }
done

# 0.1.0 (CMakeLists.txt) + the commit: 0.1.0+git20261207112853.60507cb, newer for every later
# commit, so that dpkg upgrades from one build to the next; ".dirty" for uncommitted changes.
base_version=$(sed -n 's/^project(farm VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)
version=$base_version
changelog_date=$(date -R)
if commit=$(git rev-parse --short=7 HEAD 2>/dev/null); then
  version+=+git$(TZ=UTC git log -1 --format=%cd --date=format-local:%Y%m%d%H%M%S).$commit
  changelog_date=$(git log -1 --format=%cd --date=rfc2822)
  [[ -z $(git status --porcelain --untracked-files=no 2>/dev/null) ]] || version+=.dirty
fi
arch=$(dpkg --print-architecture)
maintainer=${FARM_PACKAGE_MAINTAINER:-farm maintainers <farm@example.org>}

stage=$(mktemp -d "${TMPDIR:-/tmp}/farm-package.XXXXXX")
trap 'rm -rf "$stage"' EXIT
umask 022
mkdir -p "$out_dir"

# The libraries a binary needs, as Depends (dpkg-shlibdeps wants a debian/control to run in).
shlibs() {
  mkdir -p "$stage/shlibs/debian"
  printf 'Source: farm\n\nPackage: farm\nArchitecture: any\n' >"$stage/shlibs/debian/control"
  (cd "$stage/shlibs" && dpkg-shlibdeps -O -e"$1" 2>/dev/null) | sed -n 's/^shlibs:Depends=//p'
}

# stage_package NAME BINARY [UNIT] [CONFIG]: the package's tree under $stage/NAME.
stage_package() {
  local name=$1 binary=$2 unit=${3:-} config=${4:-}
  local root=$stage/$name
  mkdir -p "$root/DEBIAN" "$root/usr/bin" "$root/usr/share/doc/$name"
  install -m 0755 "$bin_dir/$binary" "$root/usr/bin/$binary"
  strip --strip-unneeded --remove-section=.comment --remove-section=.note "$root/usr/bin/$binary"
  install -m 0644 deploy/debian/copyright "$root/usr/share/doc/$name/copyright"
  gzip -9n <README.md >"$root/usr/share/doc/$name/README.md.gz"
  printf '%s (%s) unstable; urgency=medium\n\n  * Built from %s by deploy/package.sh.\n\n -- %s  %s\n' \
    "$name" "$version" "${commit:+commit $commit}${commit:-a source tree without git}" \
    "$maintainer" "$changelog_date" | gzip -9n >"$root/usr/share/doc/$name/changelog.gz"
  local man
  for man in deploy/debian/man/"$binary".[18]; do
    mkdir -p "$root/usr/share/man/man${man##*.}"
    gzip -9n <"$man" >"$root/usr/share/man/man${man##*.}/${man##*/}.gz"
  done
  if [[ -f deploy/debian/lintian/$name ]]; then
    install -D -m 0644 "deploy/debian/lintian/$name" "$root/usr/share/lintian/overrides/$name"
  fi
  if [[ -n $unit ]]; then
    # /etc/farm, 0755, so that farmctl certs init (which makes missing directories 0700) does
    # not hide /etc/farm/certs from the coordinator's user.
    install -d -m 0755 "$root/etc/farm"
    install -D -m 0644 "deploy/systemd/$unit.service" "$root/lib/systemd/system/$unit.service"
    install -D -m 0644 "deploy/debian/default/$unit" "$root/etc/default/$unit"
  fi
  if [[ -n $config && -f deploy/config/$config ]]; then
    install -D -m 0644 "deploy/config/$config" "$root/etc/farm/$config"
  fi
  for script in postinst prerm postrm; do
    [[ -f deploy/debian/$name/$script ]] || continue
    install -m 0755 "deploy/debian/$name/$script" "$root/DEBIAN/$script"
  done
  if [[ -d $root/etc ]]; then
    (cd "$root" && find etc -type f | sort | sed 's|^|/|') >"$root/DEBIAN/conffiles"
  fi
  local dirs=(usr)
  [[ -d $root/lib ]] && dirs+=(lib)
  (cd "$root" && find "${dirs[@]}" -type f | sort | xargs md5sum) >"$root/DEBIAN/md5sums"
  local size depends
  size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
  depends=$(shlibs "$root/usr/bin/$binary")
  [[ -n $depends ]] || { echo "package.sh: dpkg-shlibdeps found no dependencies of $binary" >&2; exit 1; }
  sed -e "s|@VERSION@|$version|" -e "s|@ARCH@|$arch|" -e "s|@MAINTAINER@|$maintainer|" \
    -e "s|@INSTALLED_SIZE@|$size|" -e "s|@SHLIBS@|$depends|" \
    "deploy/debian/$name/control" >"$root/DEBIAN/control"
  local deb=$out_dir/${name}_${version}_$arch.deb
  rm -f "$out_dir/${name}"_*.deb
  dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
  echo "$deb"
}

stage_package farm-coordinator farm-coordinator farm-coordinator coordinator.yaml
stage_package farm-agent farm-agent farm-agent agent.yaml
stage_package farmctl farmctl
