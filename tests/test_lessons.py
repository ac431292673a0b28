"""Lessons: each jupytext source has a paired notebook with the same cells, committed without outputs; every
notebook runs headless top to bottom without an error, leaves no progress bar in its outputs and exports the findings
that are committed in docs/findings (the slow part of the suite); docs/claims.md and the README's lesson table are
what those findings render to."""

import base64
import io
import json
import time
from pathlib import Path

import jupytext
import nbformat
import pytest

from explainer.experiments import claims, summaries

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted((ROOT / "lessons").glob("[0-9][0-9]_*.py"))
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
TIMES = ROOT / "test-artifacts" / "lesson_times.json"
EXPORTING = [p.stem[:2] for p in SOURCES if p.stem[:2] != "00"]  # every lesson but the index exports its findings
# Times land in test-artifacts/lesson_times.json for a look; the 90 s budget is measured by benchmarks/lesson_times.py.


MAX_PNG_WIDTH = 1150  # px: a JupyterLab notebook column at its default width, with a little slack


def _png_width(b64: str) -> int:
    from PIL import Image

    return Image.open(io.BytesIO(base64.b64decode(b64))).width


def _cells(nb) -> list[tuple[str, str]]:
    return [(c.cell_type, c.source.strip()) for c in nb.cells]


def test_there_are_lessons_and_an_index():
    assert (ROOT / "notebooks" / "00_start_here.ipynb").exists()
    assert len(SOURCES) >= 2


@pytest.mark.parametrize("src", SOURCES, ids=lambda p: p.stem)
def test_notebook_is_paired_with_its_source(src: Path):
    nb_path = ROOT / "notebooks" / f"{src.stem}.ipynb"
    assert nb_path.exists(), f"{src.name} has no paired notebook: run `make notebooks`"
    nb = nbformat.read(nb_path, as_version=4)
    assert _cells(jupytext.read(src)) == _cells(nb), f"{nb_path.name} drifted from {src.name}: run `make notebooks`"
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, f"{nb_path.name} is committed with outputs"


@pytest.mark.parametrize("lesson", EXPORTING)
def test_every_lesson_has_committed_findings(lesson: str):
    rec = summaries.load(lesson)
    assert rec["lesson"] == lesson and rec["verdicts"] and rec["headline"]
    assert all(v["status"] in ("agrees", "does not agree", "within noise", "too few to tell") for v in rec["verdicts"])


def test_claims_and_readme_are_rendered_from_the_findings():
    # one source: a number in docs/claims.md or the README's lesson table that is not in the findings fails here
    assert (ROOT / "docs" / "claims.md").read_text() == claims.render_claims(), \
        "docs/claims.md is stale: run `python -m explainer.experiments.claims`"
    readme = (ROOT / "README.md").read_text()
    assert readme == claims.readme_with_rows(readme, claims.render_lesson_rows()), \
        "the README's lesson table is stale: run `python -m explainer.experiments.claims`"


def test_drift_sees_a_changed_status_and_number_but_not_a_timing():
    old = {"lesson": "99", "headline": "h", "varies": ["seconds"], "numbers": {"iou": 0.5, "seconds": 1.0},
           "verdicts": [{"claim": "c", "status": "agrees", "numbers": "x", "n": "8", "note": ""}]}
    same = json.loads(json.dumps(old))
    same["numbers"]["seconds"] = 9.0
    assert summaries.drift(same, old) == []
    moved = json.loads(json.dumps(old))
    moved["numbers"]["iou"], moved["verdicts"][0]["status"] = 0.6, "within noise"
    assert len(summaries.drift(moved, old)) == 2


def test_drift_lets_a_verdicts_numbers_move_in_their_last_digits_only():
    """Another CPU rounds a last bit otherwise: a clipped-pixel share or a bootstrap bound moves by a unit or two of its
    last printed digit (lesson 7 measured on two machines). That is not drift; a changed word, a moved estimate or a
    count off by two is."""
    def verdict(numbers):
        return {"lesson": "07", "headline": "h", "numbers": {},
                "verdicts": [{"claim": "c", "status": "agrees", "numbers": numbers, "n": "8", "note": ""}]}

    old = verdict("CFG 20 0.0262 vs CFG 7.5 0.0036, difference +0.0226 [+0.0118, +0.0332]; 12 of 30")
    assert summaries.drift(verdict("CFG 20 0.0260 vs CFG 7.5 0.0036, difference +0.0224 [+0.0116, +0.0330]; "
                                   "13 of 30"), old) == []
    for moved in ("CFG 20 0.0300 vs CFG 7.5 0.0036, difference +0.0226 [+0.0118, +0.0332]; 12 of 30",
                  "CFG 20 0.0262 vs CFG 7.5 0.0036, difference +0.0226 [+0.0118, +0.0332]; 14 of 30",
                  "CFG 20 0.0262 and CFG 7.5 0.0036, difference +0.0226 [+0.0118, +0.0332]; 12 of 30"):
        assert len(summaries.drift(verdict(moved), old)) == 1, moved


def _progress_bars(nb) -> list[str]:
    """Outputs that are progress bars (tqdm as text on stderr, or as a widget): saved, they read "0%" for ever."""
    out = []
    for c in nb.cells:
        for o in c.get("outputs", []) if c.cell_type == "code" else []:
            text = o.get("text", "") + o.get("data", {}).get("text/plain", "")
            if "it/s]" in text or "s/it]" in text:  # tqdm's rate field, in every bar it draws, at 0 % too
                out.append(text.strip()[:80])
    return out


@pytest.mark.slow
@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.stem)
def test_lesson_runs_headless(nb_path: Path, monkeypatch, tmp_path):
    from nbclient import NotebookClient

    from explainer.models import available_models

    if nb_path.stem == "00_start_here" and "scenes-sd" not in available_models():
        pytest.skip("scenes-sd is not in this install (00_start_here opens on it)")
    nb = nbformat.read(nb_path, as_version=4)
    # The kernel draws figures as a learner's JupyterLab does (inline PNGs), so the test can see every figure.
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    monkeypatch.setenv(summaries.FINDINGS_ENV, str(tmp_path))  # the lesson exports its findings here
    client = NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(nb_path.parent)}})
    t0 = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - t0
    code = [c for c in nb.cells if c.cell_type == "code"]
    errors = [o for c in code for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors, errors[0].get("evalue")
    # every figure reaches the reader as a picture, never as the text '<Figure size ...>'
    rich = [o for c in code for o in c.get("outputs", []) if o.output_type in ("display_data", "execute_result")]
    unrendered = [o for o in rich if "image/png" not in o.get("data", {})
                  and o.get("data", {}).get("text/plain", "").startswith("<Figure")]
    assert not unrendered, f"{len(unrendered)} figure(s) shown as text, not drawn"
    # and fits a notebook column (~1,100 px at the inline backend's 100 dpi): wider PNGs are shrunk on screen, and
    # their labels with them
    widths = [(_png_width(o["data"]["image/png"]), c.source.splitlines()[0][:60])
              for c in code for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    too_wide = [(w, src) for w, src in widths if w > MAX_PNG_WIDTH]
    assert not too_wide, f"figures wider than {MAX_PNG_WIDTH} px (width, cell): {too_wide}"
    for c in code:
        if "plt.show()" in c.source:
            assert any("image/png" in o.get("data", {}) for o in c.get("outputs", [])), c.source[:80]
    assert not _progress_bars(nb), f"progress bars left in the outputs: {_progress_bars(nb)}"
    lesson = nb_path.stem[:2]
    if lesson in EXPORTING:  # what the lesson measured now is what docs/findings (and so the docs) say it measures
        exported = tmp_path / f"{lesson}.json"
        assert exported.exists(), f"{nb_path.name} exported no findings (summaries.export)"
        moved = summaries.drift(json.loads(exported.read_text()), summaries.load(lesson))
        assert not moved, f"{nb_path.name}'s findings drifted from docs/findings/{lesson}.json: {moved[:5]}"
    TIMES.parent.mkdir(exist_ok=True)
    times = json.loads(TIMES.read_text()) if TIMES.exists() else {}
    times[nb_path.stem] = round(seconds, 1)
    TIMES.write_text(json.dumps(times, indent=1, sort_keys=True))
