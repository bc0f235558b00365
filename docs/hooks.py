"""MkDocs hooks: the reference that is generated at build time, so the site cannot drift from the code.

- `<!-- flags: PROG -->` in a page becomes PROG's flags, one table per argparse group, read from the
  parser the program itself builds (`agwm-glue`, `agwm-report`). `<!-- usage: PROG -->` becomes its
  usage line.
- `<!-- public-names -->` becomes a table of `agwm_betty.__all__`: each name, linked (through
  mkdocs-autorefs) to its entry in the API pages, with its one-line summary. A name whose entry is
  missing is a broken reference, which `mkdocs build --strict` fails on.
- After every page has been read, a module of `agwm_betty` that no `::: module` directive renders is
  reported as a warning, so a new module cannot go undocumented in a strict build.
"""
from __future__ import annotations

import argparse
import html
import importlib
import inspect
import logging
import re
import sys
import warnings
from pathlib import Path

log = logging.getLogger("mkdocs.hooks.agwm")
# torch's own deprecations, raised while the CLI modules import it, are not this site's business
warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.")

# program -> its module, newest path first (the older path is tried only when the newer is missing)
PROGRAMS = {
    "agwm-glue": ("agwm_betty.cli.agwm_glue", "agwm_betty.cli.glue"),
    "agwm-report": ("agwm_betty.cli.agwm_report", "agwm_betty.cli.report"),
}
PLACEHOLDER = re.compile(r"<!--\s*(flags|usage):\s*([\w-]+)\s*-->")
PUBLIC_NAMES = re.compile(r"<!--\s*public-names\s*-->")
DIRECTIVE = re.compile(r"^:::\s*([\w.]+)", re.MULTILINE)
EMPTY_DEFAULT = re.compile(r"\s*\(default: (None|False|\(\)|\[\])\)")
PACKAGE = "agwm_betty"
# Modules that need no API entry: the programs are documented flag by flag on cli.md.
UNDOCUMENTED_OK = ("agwm_betty.cli",)

_rendered: set[str] = set()
_parsers: dict[str, argparse.ArgumentParser] = {}


class _Captured(Exception):
    """Raised from inside `parse_args` to hand back the parser a CLI module built."""

    def __init__(self, parser: argparse.ArgumentParser):
        super().__init__(parser.prog)
        self.parser = parser


def _import_first(candidates: tuple[str, ...]):
    """The first of `candidates` that exists (a module that exists but fails to import still fails)."""
    for name in candidates:
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name != name:
                raise
    raise ModuleNotFoundError(f"none of {', '.join(candidates)} can be imported")


def parser_for(prog: str) -> argparse.ArgumentParser:
    """The argparse parser of `prog`: from the module's `build_parser()` where it has one, else caught
    from inside its `parse_args(argv)` just before it would parse."""
    if prog in _parsers:
        return _parsers[prog]
    if prog not in PROGRAMS:
        raise ValueError(f"unknown program {prog!r} in a docs placeholder; known: {', '.join(PROGRAMS)}")
    root = str(Path(__file__).resolve().parents[1])
    if root not in sys.path:  # the checkout's package, installed or not
        sys.path.insert(0, root)
    module = _import_first(PROGRAMS[prog])
    if hasattr(module, "build_parser"):
        parser = module.build_parser()
    else:
        original = argparse.ArgumentParser.parse_args

        def capture(self, *args, **kwargs):
            raise _Captured(self)

        argparse.ArgumentParser.parse_args = capture
        try:
            module.parse_args([])
        except _Captured as caught:
            parser = caught.parser
        else:
            raise RuntimeError(f"{module.__name__}.parse_args built no parser")
        finally:
            argparse.ArgumentParser.parse_args = original
    parser.prog = prog
    _parsers[prog] = parser
    return parser


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _cell(text: str) -> str:
    """`text` made safe inside a Markdown table cell: no raw HTML, no column breaks, no links or
    emphasis; code spans (`...`) are left to Markdown, which escapes them itself."""
    parts = re.split(r"(`[^`]*`)", " ".join(text.split()))
    for i in range(0, len(parts), 2):  # the even parts are outside code spans
        part = html.escape(parts[i], quote=False)
        for char in "|*[]":
            part = part.replace(char, "\\" + char)
        parts[i] = part
    return "".join(parts)


def _code(text: str) -> str:
    return f"`{text}`"  # a | inside a code span does not split a table row


def _default_note(action: argparse.Action, help_text: str) -> str:
    """' Default: `x`.' for a plain default the help text does not already state."""
    default = action.default
    if "default" in help_text.lower() or default in (None, False, argparse.SUPPRESS):
        return ""
    if isinstance(default, (int, float, str, Path)) and not isinstance(default, bool):
        return f"{'' if help_text.rstrip().endswith('.') else '.'} Default: {_code(str(default))}."
    return ""


def _flag_rows(parser: argparse.ArgumentParser, prog: str, actions: list[argparse.Action]) -> list[str]:
    formatter = parser._get_formatter()
    rows = ["| Flag | Value | What it does |", "|---|---|---|"]
    for action in actions:
        if action.option_strings:
            # the anchor names the long flag (`--save-alphas`; `--progress` for `--progress/--no-progress`)
            name = (action.option_strings[0] if isinstance(action, argparse.BooleanOptionalAction)
                    else max(action.option_strings, key=len)).lstrip("-")
            flags = ", ".join(_code(s) for s in action.option_strings)
            value = "" if action.nargs == 0 else formatter._format_args(
                action, formatter._get_default_metavar_for_optional(action))
        else:
            name = action.dest
            flags = _code(action.dest)
            value = formatter._format_args(action, formatter._get_default_metavar_for_positional(action))
        help_text = formatter._expand_help(action) if action.help else ""
        help_text = EMPTY_DEFAULT.sub("", help_text)  # ArgumentDefaultsHelpFormatter's "(default: None)"
        anchor = f'<a id="{prog}-{_slug(name)}"></a>'
        value_cell = _code(value) if value else ("on/off" if isinstance(action, argparse.BooleanOptionalAction)
                                                 else "switch")
        rows.append(f"| {anchor}{flags} | {value_cell} | {_cell(help_text)}{_default_note(action, help_text)} |")
    return rows


def render_flags(prog: str) -> str:
    """Every flag of `prog`, a section and a table per argparse group, in the parser's order."""
    parser = parser_for(prog)
    out = []
    for group in parser._action_groups:
        actions = [a for a in group._group_actions
                   if a.help is not argparse.SUPPRESS and not isinstance(a, argparse._HelpAction)]
        if not actions:
            continue
        title = group.title or "options"
        out += [f"### {title[:1].upper()}{title[1:]} {{#{prog}-group-{_slug(title)}}}", ""]
        if group.description:
            out += [_cell(group.description), ""]
        out += _flag_rows(parser, prog, actions) + [""]
    return "\n".join(out)


def render_usage(prog: str) -> str:
    return "```text\n" + parser_for(prog).format_usage().strip() + "\n```"


def _summary(obj) -> str:
    doc = inspect.getdoc(obj) if (inspect.isclass(obj) or inspect.isroutine(obj)) else None
    if not doc:
        return ""
    paragraph = " ".join(doc.split("\n\n")[0].split())
    sentence = re.match(r"(.+?\.)(?=\s+[A-Z]|$)", paragraph)  # its first sentence
    return sentence.group(1) if sentence else paragraph


def _home_module(name: str, obj) -> str:
    """The module that defines `obj` (for values that carry no `__module__`: the deepest loaded
    module of the package that binds `name` to it)."""
    if inspect.isclass(obj) or inspect.isroutine(obj):
        return obj.__module__
    holders = [m for m_name, m in list(sys.modules.items())
               if m_name.startswith(PACKAGE + ".") and getattr(m, name, None) is obj
               and name in vars(m)]
    return max(holders, key=lambda m: m.__name__.count(".")).__name__ if holders else PACKAGE


def render_public_names() -> str:
    """The table of `agwm_betty.__all__`. A class or function links to its own entry; a value (which
    carries no docstring of its own) or an undocumented object links to the module that defines it."""
    package = importlib.import_module(PACKAGE)
    rows = ["| Name | Defined in | What it is |", "|---|---|---|"]
    for name in package.__all__:
        obj = getattr(package, name)
        home = _home_module(name, obj)
        summary = _summary(obj)
        target = f"{home}.{name}" if summary else home
        rows.append(f"| [`{name}`][{target}] | `{home}` | {_cell(summary)} |")
    return "\n".join(rows)


def on_pre_build(config) -> None:
    """Start each build (`mkdocs serve` rebuilds in one process) from nothing seen and no parser kept."""
    _rendered.clear()
    _parsers.clear()


def on_page_markdown(markdown: str, page, config, files) -> str:
    _rendered.update(DIRECTIVE.findall(markdown))

    def replace(match: re.Match) -> str:
        kind, prog = match.groups()
        return render_flags(prog) if kind == "flags" else render_usage(prog)

    markdown = PLACEHOLDER.sub(replace, markdown)
    return PUBLIC_NAMES.sub(lambda _: render_public_names(), markdown)


def _package_modules(root: Path) -> list[str]:
    names = []
    for path in sorted((root / PACKAGE).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if any(part.startswith("_") for part in parts):
            continue
        names.append(".".join(parts))
    return names


def on_env(env, config, files):
    """Every page has been read by now: warn about modules that no page renders."""
    root = Path(config.config_file_path).resolve().parent
    missing = [m for m in _package_modules(root) if m not in _rendered
               and not any(m == ok or m.startswith(ok + ".") for ok in UNDOCUMENTED_OK)]
    for module in missing:
        log.warning("module %s is rendered on no page: add '::: %s' to a page of docs/api/", module, module)
    return env
