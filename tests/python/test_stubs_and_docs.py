"""The type stubs (vcpumap/__init__.pyi) name every public name of the module, and every
public name has a docstring: editors complete and explain the whole API."""
import ast
import inspect
import pathlib
import re

import vcpumap

STUB = pathlib.Path(vcpumap.__file__).with_name("__init__.pyi")
INHERITED = set(dir(object)) | {"__dict__", "__module__", "__weakref__", "__annotations__", "_fields",
                                "__getstate__", "__setstate__", "__buffer__", "__reduce__", "__reduce_ex__"}


SIGNATURE = re.compile(r"^\s*(\d+\. )?\w+\(.*\)( -> .*)?$|^Overloaded function\.$")


def doc_text(value):
    """A docstring without the signatures pybind11 puts first: what a person wrote."""
    doc = getattr(value, "__doc__", None) or ""
    if isinstance(value, property):
        doc = (value.__doc__ or "") or (value.fget.__doc__ or "")
    return "\n".join(line for line in doc.splitlines() if not SIGNATURE.match(line)).strip()


def stub_names():
    tree = ast.parse(STUB.read_text())
    top, members = set(), {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            top.add(node.name)
            names = set()
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    names.add(item.name)
                elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    names.add(item.target.id)
                elif isinstance(item, ast.Assign):
                    names.update(t.id for t in item.targets if isinstance(t, ast.Name))
            for base in node.bases:  # members stubbed on a private base (_Record)
                if isinstance(base, ast.Name) and base.id.startswith("_"):
                    names |= members.get(base.id, set())
            members[node.name] = names
        elif isinstance(node, ast.ImportFrom) and node.module == "vcpumap._types":
            top.update(a.asname or a.name for a in node.names)  # plain Python: its source is its stub
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            top.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            top.add(node.target.id)
    return top, members


def public_members(cls):
    if issubclass(cls, BaseException):
        return {n for n in vars(cls) if not n.startswith("_")}
    if issubclass(cls, __import__("enum").Enum):
        return {m.name for m in cls}
    return {n for n in dir(cls) if n not in INHERITED and not (n.startswith("_") and not n.startswith("__"))
            and n not in ("_asdict",)} - {"__init__", "__new__"} | ({"__init__"} if "__init__" in vars(cls) else set())


def test_every_public_name_is_stubbed():
    top, members = stub_names()
    missing = [n for n in vcpumap.__all__ if n not in top]
    assert not missing, f"not in {STUB.name}: {missing}"
    for name in vcpumap.__all__:
        obj = getattr(vcpumap, name)
        if not inspect.isclass(obj) or name not in members:
            continue
        extra = sorted(public_members(obj) - members[name] - INHERITED)
        assert not extra, f"{name}: members missing from the stub: {extra}"


def test_every_public_name_has_a_docstring():
    undocumented = []
    for name in vcpumap.__all__:
        obj = getattr(vcpumap, name)
        if isinstance(obj, (str, tuple)):
            continue
        if not doc_text(obj):
            undocumented.append(name)
        if inspect.isclass(obj) and not issubclass(obj, (BaseException, __import__("enum").Enum)):
            for member, value in vars(obj).items():
                if member.startswith("_") and member not in ("__init__", "__format__", "__str__", "__contains__",
                                                               "__iter__", "__len__", "__getitem__", "__enter__"):
                    continue
                if value is None:
                    continue
                if not doc_text(value):
                    undocumented.append(f"{name}.{member}")
    assert not undocumented, undocumented
