"""The Kubernetes spawn form's dataset list, from Fluid Dataset objects."""

from __future__ import annotations

from codespace.datasets.fluid_objects import dataset_manifest
from spawner.form import render_form
from spawner.kube.form import dataset_choices


def dataset(name: str, phase: str | None, description: str = "") -> dict:
    obj = dataset_manifest(name, "ns", f"s3://b/{name}", description=description)
    return {**obj, "status": {"phase": phase}} if phase else obj


def test_bound_datasets_are_offered_and_the_others_shown_disabled_with_their_phase():
    selectable, unavailable = dataset_choices(
        [dataset("zeta", "Bound"), dataset("alpha", "Bound", "<b>digits</b>"), dataset("wip", None)]
    )
    assert selectable == [("alpha", "<b>digits</b>"), ("zeta", "")]
    assert unavailable == [("wip", "Pending, not Bound yet")]
    html = render_form(datasets=selectable, unavailable=unavailable, datasets_note="note")
    assert '<option value="alpha">alpha - &lt;b&gt;digits&lt;/b&gt;</option>' in html
    assert '<option value="wip" disabled>wip (Pending, not Bound yet)</option>' in html
    assert 'name="datasets" multiple size="3"' in html


def test_no_datasets_and_no_note_means_no_dataset_field():
    assert "codespace-datasets" not in render_form()
    assert "codespace-datasets" in render_form(unavailable=[("x", "NotBound")])
