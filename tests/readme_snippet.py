#!/usr/bin/env python3
"""Writes README.md's first-look snippet as a program, to prove it compiles as written.

    readme_snippet.py README OUT mock|xen

The snippet is the first ```cpp block after "## A first look". Its #include lines stay at
the top, the rest becomes the body of first_look(). mock: as written, run by main(). xen: the
MockHypervisor line replaced by the form its comment names ("// or: vcpumap::XenHypervisor
hv;"), with <vcpumap/xen.hpp>; main() runs it only when given an argument (it needs a Xen
dom0), so the test proves it compiles, links and loads.
"""
import re
import sys


def snippet(readme):
    text = readme.split("\n## A first look\n", 1)[1]
    m = re.search(r"```cpp\n(.*?)```", text, re.S)
    if not m:
        sys.exit("readme_snippet.py: no ```cpp block after '## A first look'")
    return m.group(1)


def main():
    if len(sys.argv) != 4 or sys.argv[3] not in ("mock", "xen"):
        sys.exit(__doc__)
    with open(sys.argv[1], encoding="utf-8") as f:
        code = snippet(f.read())
    lines = code.splitlines()
    includes = [l for l in lines if l.startswith("#include")]
    body = [l for l in lines if not l.startswith("#include")]
    xen = sys.argv[3] == "xen"
    if xen:
        mock = [i for i, l in enumerate(body) if "MockHypervisor::demo()" in l]
        if len(mock) != 1 or "// or: " not in body[mock[0]]:
            sys.exit("readme_snippet.py: the MockHypervisor line names no Xen form ('// or: ...')")
        body[mock[0]] = body[mock[0]].split("// or: ", 1)[1].strip()
        includes.append("#include <vcpumap/xen.hpp>")
    out = ["// Generated from README.md's first look by tests/readme_snippet.py: do not edit.", *includes, "",
           "static void first_look() {", *("  " + l if l else l for l in body), "}", "",
           "int main(int argc, char**) {" if xen else "int main() {"]
    if xen:
        out.append("  if (argc < 2) return 0;  // needs a Xen dom0: this proves it compiles, links and loads")
    out += ["  first_look();", "  return 0;", "}", ""]
    with open(sys.argv[2], "w", encoding="utf-8") as f:
        f.write("\n".join(out))


if __name__ == "__main__":
    main()
