#!/usr/bin/env python3
"""Man pages and shell completion, generated from the installed commands themselves.

    python scripts/docgen.py --man DIR --bash DIR --zsh DIR [--policy-doc docs/policy.md]

Run with the venv's python (it imports the installed sessionctl). Every console script of
the sessionctl distribution gets a page in section 1 made from its own --help text, and
bash and zsh completion made from its own argument parser (options, values, choices,
subcommands); `sessionctl` gets one page with every subcommand. docs/policy.md becomes
sessionctl-policy(5). Nothing is written by hand twice, so nothing can drift: a new
option or a new command (tsdiscon...) appears on the next install.

Layout, as loginctl's: DIR/man1/NAME.1, DIR/man5/sessionctl-policy.5,
BASHDIR/NAME (bash-completion loads it on demand), ZSHDIR/_NAME.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import os
import re
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

WINDOWS = ("qwinsta", "quser", "logoff", "msg", "tsdiscon")
SUBGROUPS = {"query": ("session", "user"), "policy": ("check",)}


@dataclass
class Command:
    """One command line: its name, --help text and the parsers it builds."""

    words: tuple[str, ...]  # ("qwinsta",) or ("sessionctl", "users")
    help: str
    options: dict[str, Option] = field(default_factory=dict)
    positionals: list[str] = field(default_factory=list)
    subcommands: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return " ".join(self.words)


@dataclass
class Option:
    takes_value: bool
    choices: tuple[str, ...] = ()
    metavar: str = ""


def console_scripts() -> dict[str, Callable[[], None]]:
    """The sessionctl distribution's console scripts, as installed."""
    out = {}
    for ep in metadata.distribution("sessionctl").entry_points:
        if ep.group == "console_scripts":
            out[ep.name] = ep.load()
    return dict(sorted(out.items()))


def _run(main: Callable[[], None], argv: list[str]) -> tuple[str, list[object]]:
    """Call a console script's main with argv; (stdout, parsers it parsed with)."""
    from sessionctl.cli import args as cli_args

    seen: list[object] = []
    original = cli_args.Parser.parse

    def spy(self: cli_args.Parser, tokens: list[str]) -> argparse.Namespace:
        seen.append(self)
        return original(self, tokens)

    out = io.StringIO()
    old_argv, cli_args.Parser.parse = sys.argv, spy  # type: ignore[method-assign]
    sys.argv = argv
    try:
        with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
            main()
    finally:
        sys.argv, cli_args.Parser.parse = old_argv, original  # type: ignore[method-assign]
    return out.getvalue(), seen


def _describe(cmd: Command, parsers: list[object]) -> None:
    for parser in parsers:
        for action in parser._actions:  # type: ignore[attr-defined]
            if not action.option_strings:
                cmd.positionals.append(action.dest)
                continue
            for opt in action.option_strings:
                cmd.options[opt] = Option(
                    action.nargs != 0, tuple(action.choices or ()), action.metavar or ""
                )
            if "--help" in action.option_strings and cmd.words[0] in WINDOWS:
                cmd.options["/?"] = Option(False)
        for short, (long_opt, takes_value) in getattr(parser, "windows_flags", {}).items():
            if short != "?":
                spelled = f"/{short.upper()}" + (":" if takes_value else "")
                base = cmd.options.get(long_opt, Option(takes_value))
                cmd.options[spelled] = Option(takes_value, base.choices, base.metavar)


def collect() -> list[Command]:
    """Every command and sessionctl subcommand, with its help and parsers."""
    from sessionctl.cli import main as cli_main

    found = []
    for name, main in console_scripts().items():
        text, parsers = _run(main, [name, "--help"])
        cmd = Command((name,), text.rstrip("\n"))
        _describe(cmd, parsers)
        if name == "sessionctl":
            cmd.subcommands = ["help", *cli_main.COMMANDS, "query"]
            cmd.options = {o: Option(False) for o in ("-h", "--help", "-V", "--version")}
        found.append(cmd)
    if "sessionctl" in console_scripts():
        main = console_scripts()["sessionctl"]
        for sub in [*cli_main.COMMANDS, "query"]:
            found.append(_sub(main, (sub,)))
            for child in SUBGROUPS.get(sub, ()):
                found.append(_sub(main, (sub, child)))
        for cmd in found:
            if cmd.words[1:] and cmd.words[1] in SUBGROUPS and len(cmd.words) == 2:
                cmd.subcommands = list(SUBGROUPS[cmd.words[1]])
    return found


def _sub(main: Callable[[], None], words: tuple[str, ...]) -> Command:
    text, parsers = _run(main, ["sessionctl", *words, "--help"])
    cmd = Command(("sessionctl", *words), text.rstrip("\n"))
    _describe(cmd, parsers)
    return cmd


# -- man pages ---------------------------------------------------------------------------


def esc(text: str) -> str:
    """Text for roff: backslashes, hyphens (as typed), a leading dot or quote."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return re.sub(r"^([.'])", r"\\&\1", text)


def inline(text: str) -> str:
    """Markdown inline → roff: `code` and **bold** in bold, links as their text."""
    text = re.sub(r"\[([^\]]+)\]\([^)]+\)", r"\1", text)
    parts = re.split(r"(`[^`]+`|\*\*[^*]+\*\*)", text)
    out = []
    for part in parts:
        if part.startswith("`") and part.endswith("`") and len(part) > 1:
            out.append(r"\fB" + esc(part[1:-1]) + r"\fR")
        elif part.startswith("**") and part.endswith("**") and len(part) > 3:
            out.append(r"\fB" + esc(part[2:-2]) + r"\fR")
        else:
            out.append(esc(part))
    return "".join(out)


_TERM = re.compile(r"^  (\S(?:\S| (?! ))*)(?: {2,}(\S.*))?$")  # words, single-spaced


def help_body(lines: list[str]) -> list[str]:
    """The part of a --help text after its synopsis, as roff: option lists become .TP
    items (term, then its description and indented continuation lines)."""
    out: list[str] = []
    in_item = False
    for line in lines:
        if not line.strip():
            out.append(".PP")
            in_item = False
            continue
        indent = len(line) - len(line.lstrip())
        term = _TERM.match(line) if indent == 2 else None
        if term is not None:
            out += [".TP", r"\fB" + esc(term.group(1)) + r"\fR"]
            if term.group(2):
                out.append(esc(term.group(2)))
            in_item = True
        elif in_item and indent > 2:
            out.append(esc(line.strip()))
        else:
            if in_item:
                out.append(".PP")
                in_item = False
            out.append(esc(line.strip()))
    return _tidy(out)


def _tidy(lines: list[str]) -> list[str]:
    out: list[str] = []
    for line in lines:
        if line == ".PP" and (not out or out[-1] in (".PP", ".TP") or out[-1].startswith(".S")):
            continue
        out.append(line)
    while out and out[-1] == ".PP":
        out.pop()
    return out


def split_help(text: str) -> tuple[str, list[str], list[str]]:
    """(summary, synopsis lines, the rest) of a --help text (see cli.runner.synopsis)."""
    paragraphs = text.split("\n\n")
    summary = " ".join(paragraphs[0].split())
    synopsis = paragraphs[1].split("\n") if len(paragraphs) > 1 else []
    rest = "\n\n".join(paragraphs[2:]).split("\n") if len(paragraphs) > 2 else []
    return summary, synopsis, rest


def header(name: str, section: int, version: str) -> list[str]:
    return [
        f'.\\" Generated by scripts/docgen.py from `{name.split("-")[0]} --help`; do not edit.',
        f'.TH "{name.upper()}" "{section}" "" "sessionctl {version}" "sessionctl"',
    ]


def see_also(names: list[str], own: str) -> list[str]:
    refs = [f"\\fB{esc(n)}\\fR(1)" for n in names if n != own]
    refs.append("\\fBsessionctl\\-policy\\fR(5)")
    return [".SH \"SEE ALSO\"", ",\n".join(refs)]


def man_page(cmd: Command, version: str, scripts: list[str], subs: list[Command]) -> str:
    summary, synopsis, rest = split_help(cmd.help)
    out = header(cmd.name, 1, version)
    out += [".SH NAME", f"{esc(cmd.name)} \\- {esc(summary)}"]
    out += [".SH SYNOPSIS", ".nf", *(esc(s) for s in synopsis), ".fi"]
    out += [".SH DESCRIPTION", esc(summary), ".PP", *help_body(rest)]
    if subs:
        out.append(".SH COMMANDS")
        for sub in subs:
            sub_summary, sub_synopsis, sub_rest = split_help(sub.help)
            out += [f'.SS "{esc(sub.name)}"', esc(sub_summary), ".PP", ".nf",
                    *(esc(s) for s in sub_synopsis), ".fi", ".PP", *help_body(sub_rest)]
    out += see_also(scripts, cmd.name)
    return "\n".join(_tidy(out)) + "\n"


def markdown_man(text: str, name: str, section: int, summary: str, version: str) -> str:
    """A markdown document (docs/policy.md) as a man page: headings, paragraphs, lists,
    tables (as tagged paragraphs) and code blocks."""
    out = ['.\\" Generated by scripts/docgen.py from docs/policy.md; do not edit.',
           f'.TH "{name.upper()}" "{section}" "" "sessionctl {version}" "sessionctl"',
           ".SH NAME", f"{esc(name)} \\- {esc(summary)}"]
    code = False
    for line in text.split("\n"):
        if line.startswith("```"):
            out += [".fi", ".RE"] if code else [".PP", ".RS 4", ".nf"]
            code = not code
        elif code:
            out.append(esc(line) if line else "")
        elif line.startswith("# "):
            out += [".SH DESCRIPTION", inline(line[2:])]
        elif line.startswith("## "):
            out.append(f'.SH "{esc(line[3:].upper())}"')
        elif line.startswith("### "):
            out.append(f'.SS "{esc(line[4:])}"')
        elif re.match(r"^\|[-| ]+\|$", line):
            continue
        elif line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            out += [".TP", inline(cells[0]), inline(" \\(em ".join(cells[1:]))]
        elif re.match(r"^\s*[*-] ", line):
            out += [".IP \\(bu 2", inline(re.sub(r"^\s*[*-] ", "", line))]
        elif not line.strip():
            out.append(".PP")
        else:
            out.append(inline(line.strip()))
    return "\n".join(_tidy(out)) + "\n"


# -- completion ---------------------------------------------------------------------------

VALUE_FILES = ("PATH", "FILE", "DIR")


def _value_kind(spec: Option) -> str:
    """How an option's value completes: "choices", "files" or "" (anything)."""
    if spec.choices:
        return "choices"
    return "files" if any(f in (spec.metavar or "").upper() for f in VALUE_FILES) else ""


def _cases(commands: list[Command]) -> list[tuple[Command, str, str]]:
    """(command, its words after the script's name, its case pattern), most words first."""
    out = []
    for cmd in sorted(commands, key=lambda c: -len(c.words)):
        sub = " ".join(cmd.words[1:])
        out.append((cmd, sub, f'"{sub}"*' if sub else "*"))
    return out


def _bash_words(cmd: Command) -> str:
    # /SERVER:-style spellings are left to their --server forms (':' splits bash words)
    return " ".join(sorted(o for o in cmd.options if not o.endswith(":")))


def bash_completion(name: str, commands: list[Command]) -> str:
    """A bash completion script for one console script (and its subcommands). Plain bash:
    it works with bash-completion's on-demand loading and when sourced without it."""
    fn = "_sessionctl_" + re.sub(r"\W", "_", name)
    lines = [f"# bash completion for {name}; generated by scripts/docgen.py from its parser.",
             f"{fn}() {{",
             '    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}',
             '    local path="" i',
             "    for ((i = 1; i < COMP_CWORD; i++)); do",
             '        case ${COMP_WORDS[i]} in -*|/*) ;; *) path+=" ${COMP_WORDS[i]}" ;; esac',
             "    done",
             "    path=${path# }",
             '    case "$path" in']
    for cmd, sub, pattern in _cases(commands):
        lines.append(f"    {pattern})")
        values = [(o, spec) for o, spec in cmd.options.items()
                  if spec.takes_value and not o.endswith(":")]
        if values:
            lines.append("        case $prev in")
            for opt, spec in sorted(values):
                kind = _value_kind(spec)
                reply = {"choices": f"compgen -W '{' '.join(spec.choices)}' -- \"$cur\"",
                         "files": 'compgen -f -- "$cur"'}.get(kind)
                lines.append(f"        {opt}) COMPREPLY=($({reply})); return ;;" if reply
                             else f"        {opt}) return ;;")
            lines.append("        esac")
        if cmd.subcommands:
            subs = " ".join(cmd.subcommands)
            lines.append(f'        if [[ "$path" == "{sub}" && $cur != -* ]]; then')
            lines.append(f"            COMPREPLY=($(compgen -W '{subs}' -- \"$cur\")); return")
            lines.append("        fi")
        lines.append(f"        COMPREPLY=($(compgen -W '{_bash_words(cmd)}' -- \"$cur\"))")
        if cmd.positionals and not cmd.subcommands:
            lines.append('        [[ $cur == [-/]* ]] || COMPREPLY+=($(compgen -u -- "$cur"))')
        lines.append("        ;;")
    lines += ["    esac", "}", f"complete -F {fn} {name}", ""]
    return "\n".join(lines)


def zsh_completion(name: str, commands: list[Command]) -> str:
    """A zsh completion function for one console script (and its subcommands)."""
    lines = [f"#compdef {name}",
             f"# zsh completion for {name}; generated by scripts/docgen.py from its parser.",
             "local -a words_in_use",
             "words_in_use=(${words[2,CURRENT-1]:#[-/]*})",
             "case \"${words_in_use[*]}\" in"]
    for cmd, _sub, pattern in _cases(commands):
        lines.append(f"  {pattern})")
        specs = []
        for opt, spec in sorted(cmd.options.items()):
            if opt.startswith("/"):  # _arguments takes only -/+ options (Windows spellings
                continue  # are completed in bash)
            if spec.takes_value:
                kind = _value_kind(spec)
                action = {"choices": "(" + " ".join(spec.choices) + ")",
                          "files": "_files"}.get(kind, " ")
                specs.append(f"'{opt}[]:{(spec.metavar or 'value').lower()}:{action}'")
            else:
                specs.append(f"'{opt}[]'")
        if cmd.subcommands:  # the word after this command's own words
            subs = " ".join(cmd.subcommands)
            specs.append(f"'{len(cmd.words)}:command:({subs})'")
        elif cmd.positionals:
            specs.append("'*:target:_users'")
        lines.append("    _arguments -s \\")
        lines += [f"      {s} \\" for s in specs]
        lines[-1] = lines[-1].removesuffix(" \\")
        lines.append("    ;;")
    lines += ["esac", ""]
    return "\n".join(lines)


# -- main ---------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--man", type=Path, help="man directory (man1/, man5/ made in it)")
    parser.add_argument("--bash", type=Path, help="bash-completion completions directory")
    parser.add_argument("--zsh", type=Path, help="zsh functions directory")
    parser.add_argument("--policy-doc", type=Path,
                        default=Path(__file__).resolve().parents[1] / "docs" / "policy.md")
    ns = parser.parse_args(argv)
    version = importlib.import_module("sessionctl").__version__
    with tempfile.TemporaryDirectory() as private:  # asking for help changes nothing here
        for name in ("SESSIONCTL_STATE_DIR", "SESSIONCTL_RUN_DIR"):
            os.environ[name] = os.path.join(private, name.lower())
        os.environ["SESSIONCTL_AUDIT_LOG"] = os.path.join(private, "audit.jsonl")
        commands = collect()
    scripts = [c.name for c in commands if len(c.words) == 1]
    by_script: dict[str, list[Command]] = {}
    for cmd in commands:
        by_script.setdefault(cmd.words[0], []).append(cmd)
    written = []
    if ns.man:
        (ns.man / "man1").mkdir(parents=True, exist_ok=True)
        (ns.man / "man5").mkdir(parents=True, exist_ok=True)
        for name, group in by_script.items():
            top = next(c for c in group if len(c.words) == 1)
            subs = [c for c in group if len(c.words) > 1]
            path = ns.man / "man1" / f"{name}.1"
            path.write_text(man_page(top, version, scripts, subs))
            written.append(path)
        policy = ns.man / "man5" / "sessionctl-policy.5"
        policy.write_text(markdown_man(ns.policy_doc.read_text(), "sessionctl-policy", 5,
                                       "the idle-session policy file of sessionctl daemon",
                                       version))
        written.append(policy)
    if ns.bash:
        ns.bash.mkdir(parents=True, exist_ok=True)
        for name, group in by_script.items():
            path = ns.bash / name
            path.write_text(bash_completion(name, group))
            written.append(path)
    if ns.zsh:
        ns.zsh.mkdir(parents=True, exist_ok=True)
        for name, group in by_script.items():
            path = ns.zsh / f"_{name}"
            path.write_text(zsh_completion(name, group))
            written.append(path)
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
