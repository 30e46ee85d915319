"""The fast code lookup agrees with simple-icd-10-cm's own parse of the tabular XML."""

import simple_icd_10_cm as icd

from medstore.checks.icd10 import is_icd10_code, known_codes


def test_every_code_in_the_tabular_list_is_known() -> None:
    codes = [
        code
        for code in icd.get_all_codes(with_dots=True)
        if not icd.is_chapter(code) and not icd.is_block(code)
    ]
    assert len(codes) > 90_000
    assert all(is_icd10_code(code) for code in codes)
    # Blocks of one category ("B20") are categories too: the library accepts them as items.
    assert all(icd.is_valid_item(code) for code in known_codes())


def test_chapters_blocks_and_made_up_codes_are_not_codes() -> None:
    for text in ("1", "A00-A09", "Z99.99", "I21..4", "i21.4", "XYZ", ""):
        assert not is_icd10_code(text), text
    for text in ("I21", "I21.4", "I2101", "J18.9", "S82.001R"):
        assert is_icd10_code(text), text
