"""Imports every built-in model module so that each registers itself.

``hf`` imports ``transformers`` only when ``hf_pretrained`` is built, so importing the zoo
never needs the optional extra.
"""

from trainlab.models import cnn, hf, mlp, resnet, text  # noqa: F401
