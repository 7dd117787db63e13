#!/usr/bin/env python3
"""A broken transform: writes the first half of IN's bytes to OUT, then exits 1.

    fail_half.py IN OUT

What a script that crashes mid-write leaves behind: a truncated file with no footer.
"""
import sys


def main() -> None:
    src, dst = sys.argv[1], sys.argv[2]
    with open(src, "rb") as f:
        data = f.read()
    with open(dst, "wb") as f:
        f.write(data[: len(data) // 2])
        f.flush()
    print(f"fail_half: gave up after {len(data) // 2} of {len(data)} bytes", file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":
    main()
