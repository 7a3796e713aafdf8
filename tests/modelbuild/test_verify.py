"""modelbuild.verify: an export that disagrees with its PyTorch reference fails."""

from __future__ import annotations

import pytest

from workers.manifest import read_manifest

pytestmark = pytest.mark.timeout(300)


def test_verification_fails_when_the_export_disagrees_with_pytorch(builtin_models_dir):
    import torch

    from modelbuild.checkpoint import load_reference
    from modelbuild.report import ExportError
    from modelbuild.verify import verify

    name = "builtin-marian-en-fr"
    reference = load_reference(str(builtin_models_dir / ".build" / name))
    with torch.no_grad():  # a reference that no longer matches the exported graphs
        reference[2].final_logits_bias.add_(torch.randn_like(reference[2].final_logits_bias) * 5)
    entry = read_manifest(builtin_models_dir)["models"][name]
    with pytest.raises(ExportError, match="differs from PyTorch"):
        verify(builtin_models_dir, name, entry, reference, {"en": ["the cat sees the dog"]}, 70.0)
