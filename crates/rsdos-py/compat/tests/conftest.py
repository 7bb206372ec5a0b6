"""The compatibility package's tests run in an environment where ``disk_objectstore`` is the
rsdos compatibility package (see scripts/test-python.sh)."""

import pytest


def pytest_collection_modifyitems(config, items):
    import disk_objectstore

    if not hasattr(disk_objectstore, '__rsdos_version__'):
        skip = pytest.mark.skip(reason='disk_objectstore here is not the rsdos compatibility package')
        for item in items:
            item.add_marker(skip)
