"""Where the detector looks: Grad-CAM heat maps of its fake logit, mapped back onto the image.

- :mod:`.targets`: the layer Grad-CAM reads for each ``--arch`` (the last convolutional stage,
  or the last transformer block's input norm with its tokens reshaped to the patch grid);
- :mod:`.gradcam`: the maps of a batch of crops (the ``grad-cam`` package, import name
  ``pytorch_grad_cam``), for the fake logit or the negated one;
- :mod:`.placement`: a crop's map put back at the original image's size;
- :mod:`.output`: the overlay PNG and the raw map (``.npy``), written atomically.

Only the submodules import torch, so importing this package stays light.
"""
