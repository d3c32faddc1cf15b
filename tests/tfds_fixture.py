"""A real TFDS dataset on disk (ArrayRecord), built without network or TensorFlow.

Images vary in size, as in ImageNet, or all have one shape. They are stored as
zlib-encoded uint8 tensors, or as PNG files that Pillow encodes (TFDS's own
PNG encoder needs TensorFlow); hffjax reads either through ``tfds.data_source``.
"""

import io

import numpy as np


def build_variable_size_dataset(
  data_dir: str,
  *,
  name: str = "var_shapes",
  num_train=60,
  num_test=20,
  max_side=60,
  file_format="array_record",
  test_name="test",
  unlabelled_test=False,
  bad_label_at=None,
  image_shape=None,
  num_classes=3,
  version="1.0.0",
  png=False,
):
  """Prepares ``name`` in ``data_dir``: images of varying size (3 channels), or all of ``image_shape``
  (with ``png``: PNG files, as TFDS's own image datasets store them, encoded here by Pillow)."""
  import tensorflow_datasets as tfds

  class VariableSizeImages(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    VERSION = tfds.core.Version(version)

    def _info(self):
      return tfds.core.DatasetInfo(
        builder=self,
        features=tfds.features.FeaturesDict(
          {
            "image": tfds.features.Image(shape=image_shape)
            if png
            else tfds.features.Tensor(shape=image_shape or (None, None, 3), dtype=np.uint8, encoding="zlib"),
            "label": tfds.features.ClassLabel(num_classes=num_classes),
          }
        ),
      )

    def _split_generators(self, dl_manager):
      return {"train": self._generate_examples(num_train, 0), test_name: self._generate_examples(num_test, 1)}

    def _generate_examples(self, n, seed):
      rng = np.random.default_rng(seed)
      for i in range(n):
        h, w, k = image_shape or (*rng.integers(max_side // 3, max_side, size=2), 3)
        label = i % num_classes
        unlabelled = unlabelled_test and seed == 1  # as TFDS stores a split without labels
        # A class-dependent colour (or band of rows) so that a few steps can learn something.
        image = rng.integers(0, 80, size=(h, w, k), dtype=np.uint8)
        if k >= num_classes:
          image[..., label] += 150
        else:
          image[label * h // num_classes : (label + 1) * h // num_classes] += 150
        # bad_label_at: one unlabelled record deep in the train split (key i; TFDS stores it elsewhere).
        bad = unlabelled or (seed == 0 and i == bad_label_at)
        yield i, {"image": _png(image) if png else image, "label": -1 if bad else label}

  VariableSizeImages.name = name  # what tfds.data_source(name, data_dir=...) finds on disk
  builder = VariableSizeImages(data_dir=data_dir, file_format=file_format)
  builder.download_and_prepare()
  return builder


def _png(image: np.ndarray) -> io.BytesIO:
  from PIL import Image

  out = io.BytesIO()
  Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(out, format="PNG")
  out.seek(0)
  return out


def unlabelled_positions(data_dir: str, name: str = "var_shapes", split: str = "train") -> list[int]:
  """The stored positions of a split's records with label -1 (TFDS orders records by a hash of their key)."""
  import tensorflow_datasets as tfds

  source = tfds.data_source(name, data_dir=data_dir, split=split)
  return [p for p in range(len(source)) if int(source[p]["label"]) == -1]
