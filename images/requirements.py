"""Print the third-party requirements of the Safezone images, one per line.

    python3 images/requirements.py pyproject.toml          # what the images install
    python3 images/requirements.py pyproject.toml --build  # also the build backend

The images install these first (a layer that only pyproject.toml and constraints.txt
invalidate), then the project itself with ``--no-deps``. scripts/images.sh fills its
offline wheelhouse from the same list (``--build`` adds setuptools, which ``pip install .``
needs in its isolated build environment). Standard library only: it runs on the image's
bare Python before anything is installed.
"""

import sys
import tomllib

# The control plane uses PostgreSQL (oauthenticator, for the hub's OIDC login, is a
# dependency of the project itself).
IMAGE_EXTRAS = ["postgres"]
IMAGE_ONLY: list[str] = []


def requirements(pyproject: str, build: bool = False) -> list[str]:
    with open(pyproject, "rb") as f:
        data = tomllib.load(f)
    project = data["project"]
    reqs = list(project["dependencies"])
    for extra in IMAGE_EXTRAS:
        reqs += project["optional-dependencies"][extra]
    reqs += IMAGE_ONLY
    if build:
        reqs += data["build-system"]["requires"]
    return reqs


if __name__ == "__main__":
    args = sys.argv[1:]
    if not args or args[0].startswith("-"):
        sys.exit("usage: requirements.py PYPROJECT [--build]")
    print("\n".join(requirements(args[0], build="--build" in args[1:])))
