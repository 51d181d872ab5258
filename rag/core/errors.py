"""The one base class of errors a user can cause and fix.

Every such error's message names the file, key or value and what to do. The console scripts
catch ``UserError`` (and costing's own ``CostingConfigError``: ``costing`` imports nothing of
ours) and print the message on one line with exit code 2, instead of a traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input or environment the user can fix; the message says what to do."""
