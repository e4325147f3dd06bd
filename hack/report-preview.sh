#!/usr/bin/env bash
# Renders the Mermaid charts of a validation report to PNG the way a forge
# shows them: mermaid-cli in a local headless Chromium, at a forge's
# content width. One PNG per chart, named after the chart's SVG file
# (charts/<id>.svg -> <id>.png).
#
#   hack/report-preview.sh path/to/report.md [OUT_DIR]
#
# OUT_DIR defaults to <report>-preview beside the report. Needs node and
# npm (mermaid-cli is installed once into the cache below, never with a
# browser of its own) and Debian's chromium (apt-get install chromium).
set -euo pipefail

MERMAID_CLI_VERSION=${MERMAID_CLI_VERSION:-12.2.0}
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
WIDTH=${WIDTH:-880} # the width of GitHub's Markdown column, in CSS pixels

report=${1:?usage: hack/report-preview.sh REPORT.md [OUT_DIR]}
out=${2:-${report%.md}-preview}
[[ -f $report ]] || { echo "report-preview: $report: no such file" >&2; exit 1; }
command -v npm >/dev/null || { echo "report-preview: npm not found (install node and npm)" >&2; exit 1; }
[[ -x $CHROMIUM ]] || { echo "report-preview: $CHROMIUM not found (apt-get install chromium, or set CHROMIUM)" >&2; exit 1; }

cache=${XDG_CACHE_HOME:-$HOME/.cache}/lab/mermaid-cli-$MERMAID_CLI_VERSION
mmdc=$cache/node_modules/.bin/mmdc
if [[ ! -x $mmdc ]]; then
	echo "report-preview: installing @mermaid-js/mermaid-cli@$MERMAID_CLI_VERSION into $cache" >&2
	mkdir -p "$cache"
	# 12.x declares node >= 22.13 but renders on node 20: npm only warns.
	PUPPETEER_SKIP_DOWNLOAD=1 npm install --prefix "$cache" --no-audit --no-fund --loglevel=error \
		"@mermaid-js/mermaid-cli@$MERMAID_CLI_VERSION" >&2
fi

# Chromium runs as root here, so without its sandbox; and it stays off the
# network.
config=$cache/puppeteer.json
cat >"$config" <<EOF
{
  "executablePath": "$CHROMIUM",
  "args": ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"]
}
EOF

mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Split the report into one .mmd per Mermaid block, named after the SVG the
# report shows under it (or chart-N when there is none).
awk -v dir="$work" '
	/^```mermaid$/ { n++; inside = 1; file = sprintf("%s/%02d.mmd", dir, n); next }
	inside && /^```$/ { inside = 0; close(file); next }
	inside { print > file; next }
	n && !named[n] && match($0, /\(charts\/[^)]+\.svg\)/) {
		id = substr($0, RSTART + 8, RLENGTH - 13)
		print id > sprintf("%s/%02d.name", dir, n); close(sprintf("%s/%02d.name", dir, n))
		named[n] = 1
	}
' "$report"

shopt -s nullglob
blocks=("$work"/*.mmd)
if ((${#blocks[@]} == 0)); then
	echo "report-preview: $report has no Mermaid block" >&2
	exit 0
fi
for mmd in "${blocks[@]}"; do
	base=${mmd%.mmd}
	name=chart-$(basename "$base")
	[[ -f $base.name ]] && name=$(<"$base.name")
	png=$out/$name.png
	"$mmdc" --quiet -p "$config" -i "$mmd" -o "$png" --size "$WIDTH" -b white
	echo "$png"
done
