"""The suite's data: with CI=true a missing ../shared/data fails the run instead of skipping tests."""

import conftest
import pytest


@pytest.mark.parametrize('ci', ['true', ''])
def test_missing_shared_data_fails_in_ci_and_skips_elsewhere(monkeypatch, tmp_path, ci):
    monkeypatch.setattr(conftest, 'SHARED_DATA', str(tmp_path / 'no_shared_data'))
    monkeypatch.setenv('CI', ci)
    expected = pytest.fail.Exception if ci else pytest.skip.Exception
    with pytest.raises(expected, match='coco_val2017_sample'):
        conftest.shared('coco_val2017_sample')
