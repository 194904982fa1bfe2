"""A Beam TFX component featurizing image files with a frozen backbone (RunInference).

Import the TFX component from ``components.image_featurizer.component``; the lighter modules
(``config``, ``decoding``, ``handlers``, ``beam_pipeline``, ``outputs``, ``sources``) do not
import TFX.
"""

from components.image_featurizer.sources import images_fingerprint

__all__ = ["images_fingerprint"]
