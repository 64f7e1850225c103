"""The one rule for amounts of money (api_client/amounts.py), and the one price unit (started megapixels)."""

from __future__ import annotations

from importlib import import_module

import pytest
from conftest import PACK_NAME


@pytest.mark.parametrize(("value", "read"), [
    (0, 0.0), (12, 12.0), (0.06, 0.06), ("120000", 120000.0), (" 0.5\n", 0.5), ("1e3", 1000.0),
])
def test_a_finite_amount_of_zero_or_more_is_read(amounts, value, read):
    assert amounts.amount(value) == read


@pytest.mark.parametrize("value", [
    None, True, False, -1, -0.01, float("nan"), float("inf"), "-5", "n/a", "", "nan", "inf", 10**400, [], {}, "1" * 500,
])
def test_anything_else_is_unknown_never_free(amounts, value):
    assert amounts.amount(value) is None
    assert amounts.valid_amount(value) is False


def test_valid_amount_takes_numbers_only(amounts):
    assert amounts.valid_amount(0) and amounts.valid_amount(2.5)
    assert not amounts.valid_amount("2.5")  # text is read by ``amount``, never taken as an amount as it is


@pytest.mark.parametrize(("width", "height", "megapixels"), [
    (1024, 1024, 1), (1024, 1025, 2), (512, 512, 1), (2048, 2048, 4), (1920, 1080, 2), (1, 1, 1),
])
def test_a_picture_is_priced_per_started_megapixel(pack, width, height, megapixels):
    pricing = import_module(f"{PACK_NAME}.api_client.money.pricing")
    estimate = import_module(f"{PACK_NAME}.api_client.money.estimate")
    assert pricing.started_megapixels(width, height) == megapixels
    # The estimate from learned rates counts the same unit as the price list.
    body = {"model": "m", "num_images": 3, "image_size": {"width": width, "height": height}}
    assert estimate._megapixel_pictures(body) == 3 * megapixels
