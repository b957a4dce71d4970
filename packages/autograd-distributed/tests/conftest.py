"""Test modules import the launch helpers in dist_helpers.py beside this file."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
