import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def pytest_collection_finish(session):
    """Start compiling the C builds (tests/c_build.py) in the background as soon as a C test is
    collected, so that the compilers run while the Python-only tests do."""
    if any(item.path.name.startswith("test_c_") for item in session.items):
        import c_build

        if not c_build.environment_library():
            c_build.prefetch((*c_build.MATRIX, "asan"), drivers=True)
