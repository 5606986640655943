#!/usr/bin/env bash
# Puts the installed commands where admins look for them, as loginctl's package does:
# PREFIX/bin links, man pages (PREFIX/share/man: man1 per command, man5/sessionctl-policy),
# bash completion (PREFIX/share/bash-completion/completions) and zsh completion
# (PREFIX/share/zsh/site-functions). Pages and completion are generated from the
# installed commands' own --help and parsers (scripts/docgen.py), so they cannot drift.
#   scripts/install-commands.sh VENV PREFIX
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
venv=$1
prefix=$2
mkdir -p "$prefix/bin"
commands=$("$venv/bin/python" - <<'PY'
from importlib.metadata import distribution
print(" ".join(sorted(e.name for e in distribution("sessionctl").entry_points
                      if e.group == "console_scripts")))
PY
)
for cmd in $commands; do
  ln -sf "$venv/bin/$cmd" "$prefix/bin/$cmd"
done
"$venv/bin/python" "$here/scripts/docgen.py" \
  --man "$prefix/share/man" \
  --bash "$prefix/share/bash-completion/completions" \
  --zsh "$prefix/share/zsh/site-functions" >/dev/null
echo "install: $commands in $prefix/bin; man pages and bash/zsh completion in $prefix/share" >&2
