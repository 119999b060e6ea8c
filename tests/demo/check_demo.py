"""Runs the nngen demo and the PyTorch reference and compares their output
line by line.  Usage: check_demo.py DEMO_EXE"""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def torch_missing():
    try:
        import torch  # noqa: F401
        return None
    except Exception as e:  # pragma: no cover
        return str(e)


def main():
    why = torch_missing()
    if why:
        if os.environ.get("NNGEN_REQUIRE_TORCH") == "1":
            print("FAIL: PyTorch is required (NNGEN_REQUIRE_TORCH=1) but cannot be imported:", why)
            return 1
        print("SKIP: PyTorch not importable under", sys.executable, "-", why)
        return 77
    demo = subprocess.run([sys.argv[1]], capture_output=True, text=True, timeout=120)
    if demo.returncode != 0:
        print("FAIL: the demo exited with", demo.returncode, demo.stderr)
        return 1
    ref = subprocess.run([sys.executable, os.path.join(HERE, "d2l_reference.py")],
                         capture_output=True, text=True, timeout=300)
    if ref.returncode != 0:
        print("FAIL: the reference failed", ref.stderr)
        return 1
    a, b = demo.stdout.splitlines(), ref.stdout.splitlines()
    failed = passed = 0
    section = ""
    for i in range(max(len(a), len(b))):
        x = a[i] if i < len(a) else "<missing>"
        y = b[i] if i < len(b) else "<missing>"
        if y.startswith("### "):
            section = y
        if x == y:
            passed += 1
        else:
            failed += 1
            print(f"line {i + 1} differs in section {section!r}:\n  nngen:   {x}\n  pytorch: {y}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
