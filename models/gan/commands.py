"""`endospine-model gan train|synthesize|quality|ablation`: parsers and handlers.

Handlers import their modules when called, so building the parser stays cheap (no Paddle).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from models.core.cliutil import non_negative_int, number, positive_int, show_progress

share = number(float, 0, 1, what="a share")


def cmd_train(args: argparse.Namespace) -> int:
    from models.gan.config import GanConfig
    from models.gan.store import read_gan_dir
    from models.gan.train import train_gan

    base = args.config
    if args.resume:
        base = read_gan_dir(args.out).root / "config.yaml"  # one clear line when there is nothing to resume
    cfg = GanConfig.load(base, size=args.size, iters=args.iters, batch_size=args.batch_size, seed=args.seed)
    summary = train_gan(args.data, args.out, cfg, resume=args.resume, trust_pickle=args.trust_pickle,
                        progress=show_progress(args))
    print(f"GAN trained to step {summary['steps']} ({summary['s_per_iter']} s/iter); samples in "
          f"{Path(args.out) / 'samples'}")
    return 0


def cmd_synthesize(args: argparse.Namespace) -> int:
    from models.gan.synthesize import synthesize

    dataset = synthesize(args.gan, args.labels, args.out, n=args.n, seed=args.seed, perturb_share=args.perturb,
                         trust_pickle=args.trust_pickle, progress=show_progress(args))
    print(f"wrote {len(dataset.items)} GAN-synthesized image/label pairs (train split) to {args.out}")
    return 0


def cmd_quality(args: argparse.Namespace) -> int:
    from models.gan.quality import gan_quality

    result = gan_quality(args.gan, args.data, split=args.split, out=args.out, max_images=args.max_images,
                         seed=args.seed, trust_pickle=args.trust_pickle, progress=show_progress(args))
    print(json.dumps({k: result[k] for k in ("split", "images", "generated_vs_real", "train_vs_real", "grid")}))
    return 0


def cmd_ablation(args: argparse.Namespace) -> int:
    from models.gan.ablation import parse_seeds, run_ablation

    table = run_ablation(args.data, args.gan_data, args.out, parse_seeds(args.seeds), iters=args.iters,
                         config=args.config, ratio=args.ratio, trust_pickle=args.trust_pickle,
                         progress=show_progress(args))
    d = table["difference"]
    print(f"test Dice with - without GAN: {d['dice']['mean']:+.4f} (std {d['dice']['std']:.4f}); IoU "
          f"{d['iou']['mean']:+.4f} (std {d['iou']['std']:.4f}); table in {Path(args.out) / 'ablation.md'}")
    return 0


def add_gan_commands(sub, add_trust_flag) -> None:
    """The gan subcommands; add_trust_flag(parser) adds the CLI's --trust-pickle (old pickle checkpoints)
    to every command that loads a checkpoint."""
    gan = sub.add_parser("gan", help="label-to-image GAN: train, synthesize images, measure quality, ablation",
                         description="A pix2pix-style GAN that paints images from label maps, to add synthetic "
                                     "training images; and the ablation that tells whether they help.")
    cmds = gan.add_subparsers(title="gan commands", metavar="COMMAND")

    p = cmds.add_parser("train", help="train the GAN on a dataset's train split",
                        description="Train a U-Net generator and spectral-norm PatchGAN discriminator (hinge + L1 + "
                                    "feature matching) on the train split. Checkpoints, sample grids, train.log, "
                                    "metrics.csv and config.yaml go into GAN_DIR.")
    p.add_argument("--data", required=True, metavar="DIR", help="dataset folder (only its train split is used)")
    p.add_argument("--out", required=True, metavar="GAN_DIR", help="GAN folder to create (or resume)")
    p.add_argument("--config", metavar="FILE", help="YAML of GAN settings (see models/gan/config.py)")
    p.add_argument("--size", type=positive_int, help="square image side, a power of two (default 128; 256+ on a GPU)")
    p.add_argument("--iters", type=positive_int, help="training steps (default 10000)")
    p.add_argument("--batch-size", type=positive_int, help="images per step (default 4)")
    p.add_argument("--seed", type=non_negative_int, help="random seed (default 0)")
    p.add_argument("--resume", action="store_true", help="continue GAN_DIR from its last checkpoint")
    add_trust_flag(p)
    p.set_defaults(func=cmd_train)

    p = cmds.add_parser("synthesize", help="new image/label pairs from (perturbed) training label maps",
                        description="Paint label maps of SRC's train split, most of them perturbed into new maps "
                                    "(flips, rotation, zoom, elastic warp, recombined regions), and write a dataset "
                                    "with every image in the train split, marked source 'gan'.")
    p.add_argument("--gan", required=True, metavar="GAN_DIR", help="trained GAN folder")
    p.add_argument("--labels", required=True, metavar="SRC", help="dataset whose train label maps are used")
    p.add_argument("--out", required=True, metavar="DIR", help="dataset folder to create")
    p.add_argument("--n", type=positive_int, help="number of images (default: as many as SRC's train split)")
    p.add_argument("--seed", type=non_negative_int, default=0, help="random seed (default 0)")
    p.add_argument("--perturb", type=share, default=0.8, metavar="P",
                   help="share of first-pass maps that are perturbed; later ones always are (default 0.8)")
    add_trust_flag(p)
    p.set_defaults(func=cmd_synthesize)

    p = cmds.add_parser("quality", help="distance of generated from real images on a held-out split, and a grid",
                        description="Generate from the held-out split's label maps; SWD on Laplacian-pyramid patches "
                                    "and a Frechet distance on color/texture features against the real images (and "
                                    "real train images as the yardstick); grid of label, generated, real, nearest "
                                    "train image. Writes quality-<split>.json and .png.")
    p.add_argument("--gan", required=True, metavar="GAN_DIR", help="trained GAN folder")
    p.add_argument("--data", required=True, metavar="DIR", help="dataset (same class table as the GAN's)")
    p.add_argument("--split", default="val", choices=["val", "test"], help="held-out split (default val)")
    p.add_argument("--out", metavar="DIR", help="where to write the JSON and PNG (default GAN_DIR)")
    p.add_argument("--max-images", type=positive_int, default=200, help="at most this many images (default 200)")
    p.add_argument("--seed", type=non_negative_int, default=0, help="random seed of patches and samples (default 0)")
    add_trust_flag(p)
    p.set_defaults(func=cmd_quality)

    p = cmds.add_parser("ablation", help="segmentation training without vs with GAN images: test Dice/IoU table",
                        description="Train the segmentation model for both arms (without / with --extra-data "
                                    "GAN_DATA:RATIO) with the same seeds, config and steps; export each and measure "
                                    "its test split; write ablation.json, .md and .png. Finished runs are skipped, "
                                    "interrupted ones resumed.")
    p.add_argument("--data", required=True, metavar="DIR", help="main dataset (val picks the model, test is reported)")
    p.add_argument("--gan-data", required=True, metavar="DIR", help="GAN-synthesized dataset ('gan synthesize')")
    p.add_argument("--out", required=True, metavar="DIR", help="ablation folder (created, or continued)")
    p.add_argument("--seeds", default="0,1", help="comma-separated seeds, each run in both arms (default 0,1)")
    p.add_argument("--iters", type=positive_int, help="training steps per run (default: the config's)")
    p.add_argument("--config", metavar="FILE", help="training settings YAML (e.g. models/configs/kvasir-cpu.yaml)")
    p.add_argument("--ratio", type=number(float, 0.01, 0.99, what="a batch share"), default=0.3,
                   help="share of each batch drawn from the GAN data in the with-GAN arm (default 0.3)")
    add_trust_flag(p)
    p.set_defaults(func=cmd_ablation)
    gan.set_defaults(func=lambda args: gan.print_help() or 2)
