"""deploykit: build, deploy and route Docker apps on Mesos/Marathon.

Kept import-free on purpose: `deploykit --help` must start fast, so every
subpackage is imported only by the command that needs it.
"""

__version__ = "0.1.0"
