"""Build: the hot-path modules (listed in src/quantdesk/_compiled.py) compiled with mypyc.

`QUANTDESK_PURE=1` builds pure Python. Everything else about the package is in pyproject.toml.
"""

import os
import runpy

from setuptools import setup

compiled = runpy.run_path("src/quantdesk/_compiled.py")["COMPILED_MODULES"]

if os.environ.get("QUANTDESK_PURE") == "1":
    setup()
else:
    from mypyc.build import mypycify

    # One group: calls between compiled modules are direct C calls.
    setup(ext_modules=mypycify([f"src/{m}" for m in compiled], opt_level="3", group_name="quantdesk"))
