import pytest


@pytest.fixture(autouse=True)
def _backup_dir(settings, tmp_path):
    """Each test keeps its backups in a directory of its own."""
    settings.KVS_BACKUP_DIR = tmp_path / "backups"
    return settings.KVS_BACKUP_DIR
