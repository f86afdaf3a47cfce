"""The documentation: every code block runs, every public name is documented and on an
API page, every snippet include points at a file."""

import inspect
import pathlib
import re
import textwrap

import pytest

import setfix as sf


# Documented code runs as users run it (float32, standard promotion).
pytestmark = pytest.mark.user_defaults


ROOT = pathlib.Path(__file__).parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
BLOCK = re.compile(r"```python\n(.*?)```", re.S)
PUBLIC = sorted(
    name for name in dir(sf)
    if not name.startswith("_") and name not in ("datasets", "annotations")
    and not inspect.ismodule(getattr(sf, name))
)


def _blocks():
    for page in PAGES:
        for i, code in enumerate(BLOCK.findall(page.read_text())):
            if "--8<--" not in code:
                yield pytest.param(code, id=f"{page.relative_to(ROOT)}#{i}")


@pytest.mark.slow
@pytest.mark.parametrize("code", list(_blocks()))
def test_code_block_runs(code):
    exec(compile(code, "<doc>", "exec"), {"__name__": "__doc__"})


def _docstring_blocks():
    for name in PUBLIC:
        doc = inspect.getdoc(getattr(sf, name)) or ""
        for i, code in enumerate(BLOCK.findall(doc)):
            yield pytest.param(code, id=f"{name}#{i}")


@pytest.mark.slow
@pytest.mark.parametrize("code", list(_docstring_blocks()))
def test_docstring_block_runs(code):
    exec(compile(textwrap.dedent(code), "<docstring>", "exec"), {"__name__": "__doc__"})


def test_every_public_name_is_documented_and_on_an_api_page():
    api = "".join(p.read_text() for p in (ROOT / "docs" / "api").glob("*.md"))
    for name in PUBLIC:
        obj = getattr(sf, name)
        assert (obj.__doc__ or "").strip(), f"{name} has no docstring"
        assert f"::: setfix.{name}\n" in api, f"{name} is not on an API page"
        if inspect.isclass(obj) and not inspect.isabstract(obj) and not name.startswith(
            "Abstract"
        ):
            assert "**Arguments:**" in (obj.__init__.__doc__ or ""), (
                f"{name}.__init__ does not list its arguments"
            )
    for name in ("moons", "gaussian"):
        assert f"::: setfix.datasets.{name}\n" in api


def test_snippets_exist():
    for page in PAGES:
        for path in re.findall(r'--8<-- "([^"]+)"', page.read_text()):
            assert (ROOT / path).is_file(), f"{page.name} includes missing {path}"


def test_code_layout_page_names_every_module():
    """`docs/code.md` lists every module of the package, and only modules that exist."""
    package = ROOT / "setfix"
    modules = {str(p.relative_to(package)) for p in package.rglob("_*.py")
               if p.name not in ("__init__.py", "__main__.py")}
    listed = set(re.findall(r"^- `([\w/]+\.py)`", (ROOT / "docs" / "code.md").read_text(),
                            re.M))
    assert listed == modules, (sorted(modules - listed), sorted(listed - modules))
