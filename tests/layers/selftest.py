#!/usr/bin/python3
"""The layer check must be able to fail: build tiny libmw_<layer>.a files with gcc and ar, one
set that is layered correctly and two that are not (a base file calling into net; two hub files
calling each other), and run check_layers.py on each."""
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
LAYERS = ["base", "net", "store", "hub", "vm", "app"]


def build(tmp, files):
    """files: {layer: {name: C source}} -> a build dir holding libmw_<layer>.a for every layer."""
    for layer in LAYERS:
        objs = []
        for name, src in files.get(layer, {}).items():
            c = os.path.join(tmp, name + ".c")
            with open(c, "w") as f:
                f.write(src)
            o = os.path.join(tmp, name + ".c.o")
            subprocess.run(["gcc", "-c", "-o", o, c], check=True)
            objs.append(o)
        lib = os.path.join(tmp, f"libmw_{layer}.a")
        subprocess.run(["ar", "rcs", lib] + objs, check=True)
    return tmp


def check(files):
    with tempfile.TemporaryDirectory() as tmp:
        build(tmp, files)
        r = subprocess.run([sys.executable, os.path.join(HERE, "check_layers.py"), tmp],
                           capture_output=True, text=True)
        return r.returncode, r.stdout + r.stderr


GOOD = {
    "base": {"mw_a": "int a(void) { return 1; }\n"},
    "net": {"mw_n": "int a(void); int n(void) { return a(); }\n"},
    "app": {"mw_m": "int n(void); int m(void) { return n(); }\n"},
}
UPWARD = {
    "base": {"mw_a": "int n(void); int a(void) { return n(); }\n"},
    "net": {"mw_n": "int n(void) { return 2; }\n"},
}
CIRCLE = {
    "hub": {"mw_x": "int y(void); int x(void) { return y(); }\n",
            "mw_y": "int x(void); int y(void) { return x(); }\n"},
}


def main():
    failures = 0
    for name, files, want_rc, want_text in [
        ("layered", GOOD, 0, "no upward call, no circle"),
        ("upward", UPWARD, 1, "upward call: mw_a (base) uses mw_n (net): n"),
        ("circle", CIRCLE, 1, "files calling each other in a circle: mw_x <-> mw_y"),
    ]:
        rc, out = check(files)
        ok = rc == want_rc and want_text in out
        print(f"{'ok  ' if ok else 'FAIL'} {name}: exit {rc}\n{out}")
        failures += not ok
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
