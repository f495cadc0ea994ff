"""Doctests in src/ run with torch and numpy at hand, as the examples assume."""

import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True)
def _doctest_names(doctest_namespace: dict) -> None:
    doctest_namespace.update(torch=torch, np=np)
