"""``probforge sample`` under the command-line convention: each mode refuses the other's options."""

from __future__ import annotations

import pytest

from probforge.cli import main


@pytest.mark.parametrize("argv, text", [
    (["banana", "--dim", "3"], "--dim does not apply to the banana target"),
    (["gaussian", "--n", "5"], "--n does not apply to a target run"),
    (["gaussian", "--out", "x.png"], "'x.png' must end in .nc"),
    (["gaussian", "--checkpoint", "c.pt"], "give a target or --checkpoint, not both"),
    (["gaussian", "--chains", "0"], "argument --chains: must be >= 1, found 0"),
    (["gaussian", "--draws", "1.5"], "expected a whole number"),
    (["gaussian", "--warmup", "-1"], "must be >= 0"),
    (["gaussian", "--thin", "0"], "must be >= 1"),
    (["gaussian", "--sampler", "nuts", "--sampler", "hmc"], "--sampler is given twice"),
    (["gaussian", "--sampler", "gibbs"], "invalid choice: 'gibbs'"),
    ([], "needs a target or --checkpoint"),
])
def test_sample_mistakes_exit_2_with_one_line(argv: list[str], text: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["sample", *argv])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("probforge: error: ") and text in err, err
