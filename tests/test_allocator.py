"""`benchmark.allocator`: on request, glibc keeps freed memory for the next step; a user's own setting wins."""

from __future__ import annotations

import platform

import pytest

from benchmark import allocator


def test_glibc_is_left_as_it_is_unless_asked(monkeypatch):
    for name in (*allocator.ENVIRONMENT, allocator.OPT_IN):
        monkeypatch.delenv(name, raising=False)
    assert allocator.keep_freed_memory() is False
    assert not any(name in allocator.os.environ for name in allocator.ENVIRONMENT)


def test_keep_freed_memory_tunes_this_process_and_its_children(monkeypatch):
    for name in allocator.ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(allocator.OPT_IN, "1")
    took = allocator.keep_freed_memory()
    if platform.libc_ver()[0] == "glibc":
        assert took
    for name, value in allocator.ENVIRONMENT.items():
        assert allocator.os.environ[name] == value


def test_a_users_malloc_setting_is_left_alone(monkeypatch):
    for name in allocator.ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(allocator.OPT_IN, "1")
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "0")
    assert allocator.keep_freed_memory() is False
    assert allocator.os.environ["MALLOC_TRIM_THRESHOLD_"] == "0"
    assert "MALLOC_MMAP_THRESHOLD_" not in allocator.os.environ


@pytest.mark.parametrize("name", sorted(allocator.ENVIRONMENT))
def test_the_environment_says_what_mallopt_is_told(name):
    parameter = {"MALLOC_MMAP_THRESHOLD_": -3, "MALLOC_TRIM_THRESHOLD_": -1}[name]
    assert int(allocator.ENVIRONMENT[name]) == allocator.SETTINGS[parameter]
