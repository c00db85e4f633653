"""packstack support: the answer-file settings that follow from a lab.

`answers` is pure (lab -> overrides -> answer-file text); `secrets` keeps the lab's generated
passwords (0600, in the lab copy's state directory) and is imported on its own.
"""

from __future__ import annotations

# See labvirt/host/__init__.py: every module is pure or edge, checked by tests/test_layers.py.
PURE = ("answers",)
EDGE = ("run", "secrets")

from labvirt.packstack.answers import (apply_overrides, known_keys, known_services, mask, overrides, password_keys,
                      service_switches)

__all__ = ["apply_overrides", "known_keys", "known_services", "mask", "overrides", "password_keys",
           "service_switches"]
