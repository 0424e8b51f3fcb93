"""The compare package's light parts load without its command (and torch): the report imports them."""

import subprocess
import sys


def test_metric_keys_loads_without_the_compare_command_or_torch():
    code = ("import sys, trainlab.compare.metric_keys; "
            "print(sorted(m for m in ('torch', 'trainlab.compare.command') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_compare_and_compare_files_are_still_importable_from_the_package():
    from trainlab.compare import compare, compare_files
    from trainlab.compare.command import compare as command_compare
    from trainlab.compare.command import compare_files as command_files
    assert compare is command_compare and compare_files is command_files
