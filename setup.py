"""Installs gan_jax and its experiments (``pip install -e .``)."""

from pathlib import Path

from setuptools import find_packages, setup

here = Path(__file__).parent
requirements = [
    line.split("#")[0].strip()
    for line in (here / "requirements.txt").read_text().splitlines()
    if line.split("#")[0].strip()
]

setup(
    name="gan_jax",
    version="0.2.0",
    description="Generative Adversarial Networks in JAX/Flax: correct to the papers, reproducible to the bit.",
    long_description=(here / "README.md").read_text() if (here / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    packages=find_packages(include=["gan_jax", "gan_jax.*", "experiments", "experiments.*"]),
    # The evaluator's pinned weights (gan_jax/metrics/evaluator.py) ship inside the package.
    package_data={"gan_jax": ["assets/*.npz"]},
    python_requires=">=3.10",
    install_requires=[r for r in requirements if not r.startswith("pytest")],
    extras_require={"test": [r for r in requirements if r.startswith("pytest")], "bench": ["torch>=2.4"]},
)
