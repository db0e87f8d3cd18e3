"""GAN augmentation: a label-to-image GAN (pix2pix U-Net + spectral-norm PatchGAN) written with paddle.nn.

    train.py       `gan train`: fit the GAN on a dataset's train split (checkpoints, samples, resume)
    synthesize.py  `gan synthesize`: new image/label pairs from (perturbed) label maps, as a dataset
    quality.py     `gan quality`: distribution distance to real images on a held-out split, picture grid
    ablation.py    `gan ablation`: segmentation training without vs with GAN images, test Dice/IoU
Training-side code: the runtime (app, calibration) never imports it (setup.cfg contract).
"""
