"""Print pip constraints pinning each direct dependency of pyproject.toml to the lowest
version its range admits (``>=X`` -> ``==X``), so CI proves the lower bounds we publish.

torch and torchvision are pinned to the tested versions instead (TESTED below): the CI
machines serve only those from local disk; any other version would be a multi-GB CUDA
download from PyPI. Their lower bounds in pyproject.toml are therefore not proven here.

    python .ci/lowest_constraints.py [EXTRA...] > lowest.txt
    pip install -c lowest.txt -e '.[dev]'
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import tomllib

TESTED = {"torch": "2.14.1", "torchvision": "0.29.1"}  # what the CI machines have on disk


def lowest(requirements: list[str]) -> list[str]:
    out = []
    for req in requirements:
        match = re.match(r"\s*([A-Za-z0-9_.-]+)(\[[^\]]*\])?\s*([^;]*)", req)
        if not match:
            continue
        name, spec = match[1].lower(), match[3]
        floor = re.search(r">=\s*([0-9][^,\s]*)", spec)
        if name in TESTED:
            out.append(f"{name}=={TESTED[name]}")
        elif floor:
            out.append(f"{name}=={floor[1]}")
    return out


def main(extras: list[str]) -> None:
    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in extras:
        reqs += project["optional-dependencies"][extra]
    print("\n".join(lowest(reqs)))


if __name__ == "__main__":
    main(sys.argv[1:])
