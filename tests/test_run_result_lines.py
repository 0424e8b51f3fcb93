"""How train, resume and eval print a run's result: the run line, the train line, the metric tables."""

from __future__ import annotations

from trainlab.run_result_lines import print_run_result, run_length, train_line


def test_the_final_metric_tables_align_their_values_past_the_longest_name(tmp_path, capsys):
    """`train examples/multilabel_tags.yaml`: subset_accuracy and hamming_accuracy are longer than 12 characters;
    every value of the val and test tables starts in one column."""
    metrics = {"loss": 0.322766, "subset_accuracy": 0.613333, "hamming_accuracy": 0.854444, "f1_micro": 0.84}
    summary = {"name": "tags", "stop_reason": "epochs=2 reached", "epochs_run": 2, "train_time_s": 0.1,
               "mode": "mini-batch gradient descent (batch 64)", "val": {"loss": 0.36}, "test": metrics}
    print_run_result(summary, tmp_path)
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("  ")]
    assert rows[0] == "  loss             0.36"  # the val table takes the test table's column
    assert {row.index("0.") for row in rows} == {len("  hamming_accuracy ")}
    assert "  hamming_accuracy 0.854444" in rows


def test_the_report_says_the_split_rows_tta_and_one_epoch_in_the_singular(tmp_path, capsys):
    """A run's first line gave no split sizes and "after 1 epochs"; its val/test tables, averaged over TTA's
    views, looked like single-view values (the last epoch record's val differs from them)."""
    summary = {"name": "digits", "stop_reason": "epochs=1 reached", "epochs_run": 1, "train_time_s": 0.1,
               "mode": "mini-batch gradient descent (batch 64)", "val": {"loss": 0.3}, "test": {"loss": 0.4},
               "evaluation": {"tta": {"flip": True, "translate": 1, "when": "final", "views": 6}},
               "rows": {"train": 78, "val": 18, "test": 24}}
    print_run_result(summary, tmp_path)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == ("run digits: epochs=1 reached after 1 epoch (0.10 s, mini-batch gradient descent (batch 64); "
                      "rows 78 train, 18 val, 24 test)")
    assert "val (TTA, 6 views):" in out and "test (TTA, 6 views):" in out
    print_run_result({**summary, "epochs_run": 2, "evaluation": {"tta": None}, "rows": None}, tmp_path)
    out = capsys.readouterr().out.splitlines()
    assert "after 2 epochs (0.10 s, mini-batch gradient descent (batch 64))" in out[0] and "val:" in out


def test_the_train_line_gives_the_numbers_and_says_which_weights():
    summary = {"train": {"loss": 0.0312, "accuracy": 0.99375, "confusion_matrix": [[1, 0], [0, 1]], "r2": None}}
    assert train_line(summary, "") == "train: loss 0.0312, accuracy 0.99375, r2 null (the saved model, eval mode)"
    assert train_line({"train": {}}, " (TTA, 6 views)") == \
        "train (TTA, 6 views): (no rows in this split) (the saved model, eval mode)"
    assert train_line({}, "") is None  # output.evaluate_train: false


def test_a_budgeted_run_that_ended_inside_an_epoch_gives_its_steps():
    budgeted = {"steps": 1134, "epochs_run": 24, "notes": {"time_budget": {"steps_per_epoch": 49}}}
    assert run_length(budgeted) == "23.14 epochs (1134 steps)"
    assert run_length({**budgeted, "steps": 1176}) == "24 epochs"
    assert run_length({"steps": 10, "epochs_run": 1}) == "1 epoch"


def test_class_names_beyond_ascii_are_printed_as_written():
    """f1_per_class printed {"b\\u00e2teau": 0.83, "Zug \\ud83d\\ude82": 0.0}: JSON's escapes, not the names
    (predict's header wrote them as they are)."""
    import io
    from contextlib import redirect_stdout

    from trainlab.run_result_lines import print_metrics

    printed = io.StringIO()
    with redirect_stdout(printed):
        print_metrics("test:", {"f1_per_class": [0.833333, 0.0], "labels": ["ärger"]}, class_names=["bâteau", "Zug 🚂"])
    lines = printed.getvalue().splitlines()
    assert lines[1] == '  f1_per_class {"bâteau": 0.833333, "Zug 🚂": 0.0}'
    assert lines[2] == '  labels       ["ärger"]'
