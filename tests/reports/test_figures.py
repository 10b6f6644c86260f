"""Figure helpers against pixels placed by hand."""

from __future__ import annotations

import torch


def test_image_grid_lays_out_images_in_channel_order() -> None:
    import io

    import numpy as np
    from PIL import Image

    from reports.figures import image_grid

    images = torch.zeros(3, 1, 4, 4)
    images[1, 0, 0, 0] = 1.0  # image 2: one bright corner pixel
    grid = np.array(Image.open(io.BytesIO(image_grid(images, columns=2, scale=1, gap=1))))
    assert grid.shape == (2 * 5, 2 * 5)
    assert grid[0, 5] == 255 and grid[0, 6] == 0  # image 2 starts after image 1 and a gap
