"""`latentloop info` on the puzzle-embedding table: its memory at ARC scale, described without allocating it."""

from latentloop.cli import main
from latentloop.models import config as model_config
from latentloop.models.info import preset_info


def test_a_table_far_larger_than_memory_is_described_without_allocating_it():
    rows = 1_000_000_000                       # 1.9 TiB of fp32: building it for real would fail
    info = preset_info("trm-arc1", [f"num_puzzle_identifiers={rows}"])
    assert info.puzzle_bytes == rows * 512 * 4 and info.batch_rows == 768
    text = info.report()
    assert "1,000,000,000 rows x 512 fp32 (1,907.35 GiB)" in text
    assert "sign-SGD updates at most 768 rows (1.5 MiB) per optimizer step" in text and "not here" not in text


def test_a_preset_without_its_dataset_says_the_row_count_is_a_placeholder(tmp_path, capsys):
    assert main(["info", "trm-arc1", f"data_path={tmp_path / 'missing'}"]) == 0
    text = capsys.readouterr().out
    assert "1 row x 512 fp32" in text and "which is not here" in text
    assert "each identifier adds 2,048 bytes (1,000,000 identifiers: 1.91 GiB)" in text


def test_a_single_row_table_is_touched_at_most_once_per_step(toy_dataset):
    info = preset_info("cpu-sudoku6", [f"data_path={toy_dataset}"])   # its one identifier, read from the dataset
    assert info.puzzle_rows == 1 and "at most 1 row (512 bytes) per optimizer step" in info.report()
    assert "not here" not in info.report()


def test_info_says_what_forward_dtype_auto_resolves_to_here(monkeypatch, capsys):
    monkeypatch.setattr(model_config, "cpu_flags", lambda: {"avx2"})   # detection mocked
    assert preset_info("cpu-sudoku6", ["forward_dtype=auto", "device=cpu"]).precision == (
        "forward_dtype auto -> float32 (CPU has neither avx512_bf16 nor amx_bf16)")
    monkeypatch.setattr(model_config, "cpu_flags", lambda: {"avx2", "amx_bf16"})
    assert main(["info", "cpu-sudoku6", "forward_dtype=auto", "device=cpu"]) == 0
    assert "precision:                   forward_dtype auto -> bfloat16 (CPU has amx_bf16)" in capsys.readouterr().out
    # the built-in default picks for the machine; float32 stays exact fp32
    assert preset_info("cpu-sudoku6", ["device=cpu"]).precision == "forward_dtype auto -> bfloat16 (CPU has amx_bf16)"
    assert preset_info("cpu-sudoku6", ["forward_dtype=float32"]).precision == "forward_dtype float32"
