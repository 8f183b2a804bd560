"""Fixtures shared by the page tests."""
from __future__ import annotations

import pytest
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage


@pytest.fixture(scope="module")
def downloads():
    """Bytes of every file handed to the (mock) media storage, by URL: what a download button serves."""
    files: dict[str, bytes] = {}
    original = MemoryMediaFileStorage.load_and_get_id

    def recording(self, path_or_data, mimetype, kind, filename=None):
        file_id = original(self, path_or_data, mimetype, kind, filename)
        files[self.get_url(file_id)] = path_or_data if isinstance(path_or_data, bytes) else path_or_data.encode()
        return file_id

    MemoryMediaFileStorage.load_and_get_id = recording
    yield files
    MemoryMediaFileStorage.load_and_get_id = original
