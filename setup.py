"""Package list only (metadata lives in pyproject.toml): the ipywidgets layer sits in the top-level
`widgets/` folder and installs as `egokit.widgets`."""

from setuptools import find_packages, setup

widget_packages = ["egokit.widgets"] + [f"egokit.widgets.{p}" for p in find_packages("widgets")]
setup(
    packages=find_packages(include=["egokit", "egokit.*"]) + widget_packages,
    package_dir={"egokit.widgets": "widgets"},
)
