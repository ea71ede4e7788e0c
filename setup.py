"""Build: the hot-path modules (listed in src/quantdesk/_compiled.py) compiled with mypyc.

`QUANTDESK_PURE=1` builds pure Python, and so does a machine without a C compiler (with a
warning: the same code, about 1.5x slower on the hot path). Everything else is in pyproject.toml.
"""

import os
import runpy
import shlex
import shutil
import sysconfig
import warnings

from setuptools import setup

compiled = runpy.run_path("src/quantdesk/_compiled.py")["COMPILED_MODULES"]
compiler = shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc")[:1]

if os.environ.get("QUANTDESK_PURE") == "1":
    setup()
elif not compiler or shutil.which(compiler[0]) is None:
    warnings.warn(f"no C compiler ({compiler}): building quantdesk as pure Python", stacklevel=1)
    setup()
else:
    from mypyc.build import mypycify

    # One group: calls between compiled modules are direct C calls.
    setup(ext_modules=mypycify([f"src/{m}" for m in compiled], opt_level="3", group_name="quantdesk"))
