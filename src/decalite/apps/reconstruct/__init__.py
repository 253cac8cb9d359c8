"""Photos to detailed, animatable heads: detect, crop (DECA's 1.25 x landmark box), encode and/or fit, export.

Crops are S x S with S the renderer's image size (``renderer.image_size``; 224 as DECA by default), so the
encoder, the photometric fit and the renders all see the same pixels.

Every input is processed on its own terms: a bad file, a photo without a face or a failing step becomes a
failure record with the reason, and the other inputs still complete. ``run`` returns a summary whose
``failures`` list is empty when everything worked.

One concept per module: :mod:`~decalite.apps.reconstruct.faces` (detection, crops, skin masks),
:mod:`~decalite.apps.reconstruct.inference` (encoder and fit), :mod:`~decalite.apps.reconstruct.coordinates` (crop <-> photo),
:mod:`~decalite.apps.reconstruct.visuals` (pictures), :mod:`~decalite.apps.reconstruct.writers` (the files of a face) and
:mod:`~decalite.apps.reconstruct.batch` (an input, batch by batch).
"""

from decalite.apps.reconstruct.batch import codes_for_input, run
from decalite.apps.reconstruct.coordinates import crop_to_photo, paste_render, photo_landmarks
from decalite.apps.reconstruct.faces import CROP_SCALE, Face, Outcome, detect_faces, landmarker_for
from decalite.apps.reconstruct.inference import infer
from decalite.apps.reconstruct.writers import check_output_dir, write_face

__all__ = ["CROP_SCALE", "Face", "Outcome", "check_output_dir", "codes_for_input", "crop_to_photo", "detect_faces",
           "infer", "landmarker_for", "paste_render", "photo_landmarks", "run", "write_face"]
