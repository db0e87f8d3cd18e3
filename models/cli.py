"""`endospine-model`: the pipeline that builds EndoSpine's models."""
from __future__ import annotations

import argparse
import os
from typing import Sequence

from models.core.cliutil import (
    Deprecated,
    add_backend,
    add_runtime_options,
    common_options,
    non_negative_int,
    plural,
    positive_int,
    resolve_backend,
    run,
    runtime_settings,
    show_progress,
)
from models.core.outputs import ANY, IMAGE, JSON, VIDEO, check_before

NETS = ("liteseg-cpu", "liteseg-gpu")  # models.nets.ARCHS, without importing Paddle to build the parser
# TrainConfig's defaults (models/train/config.py), for train's help; the flags themselves default to
# None, so that a --config file's value stands unless the flag is given. A test keeps them equal.
TRAIN_DEFAULTS = {"model": "liteseg-cpu", "iters": 6000, "batch_size": 8, "lr": 0.002, "input_size": 384,
                  "eval_every": 500, "workers": 1, "seed": 0, "freeze_backbone": 0}
# What each command writes (option -> kind, folders) and reads: checked before it runs. synth
# replaces --out as a whole when it finishes, so a --video inside it would be lost.
OUTPUTS = {
    "synth": {"files": {"video": VIDEO}, "folders": ("out",), "apart": (("video", "out"),)},
    "sheet": {"files": {"out": IMAGE}, "inputs": ("data",)},
    "frame-stats": {"files": {"json": JSON, "markdown": ANY}, "inputs": ("paths",)},
    "train": {"folders": ("out",), "inputs": ("data", "config", "init")},
    "curve": {"folders": ("out",), "inputs": ("data", "config")},
    "export": {"folders": ("out",), "inputs": ("run", "test_data")},
    "keygen": {"folders": ("out",)},
    "predict": {"folders": ("out",), "inputs": ("model", "data")},
    "evaluate": {"folders": ("out",), "inputs": ("data", "model", "pred")},
    "gate-check": {"folders": ("out",), "inputs": ("model", "ins", "oods", "corrupt")},
    "reader-study": {"folders": ("out",), "inputs": ("reference", "model", "pred")},
    "simulate-readers": {"folders": ("out",), "inputs": ("data",)},
    "extract": {"folders": ("out",), "inputs": ("videos",)},
    "import": {"folders": ("out",), "inputs": ("src",)},
    "prelabel": {"folders": ("out",), "inputs": ("model", "images", "profile")},
    "validate": {"files": {"report": ANY}, "inputs": ("data",)},
}


def _cmd_synth(args: argparse.Namespace) -> int:
    from models.core.video import parse_resolution
    from models.dataset import parse_ratios
    from models.synth.generate import generate_dataset, generate_video

    if args.video:
        width, height = parse_resolution(args.resolution)
        generate_video(args.video, args.out, width=width, height=height, fps=args.fps, frames=args.frames,
                       seed=args.seed, clip=args.clip, workers=args.workers, crf=args.crf,
                       progress=show_progress(args))
        print(f"wrote {args.video} ({plural(args.frames, 'frame')}, {width}x{height} @ {args.fps:g} fps) and labels "
              f"in {args.out}")
    else:
        generate_dataset(args.out, clips=args.clips, frames=args.frames, width=args.size, height=args.size,
                         seed=args.seed, stride=args.stride, workers=args.workers, ratios=parse_ratios(args.ratios),
                         progress=show_progress(args))
        print(f"wrote {plural(args.clips * args.frames, 'image')} from {plural(args.clips, 'clip')} to {args.out}")
    return 0


def _cmd_sheet(args: argparse.Namespace) -> int:
    from models.sheet import write_contact_sheet

    path = write_contact_sheet(args.data, args.out, n=args.n, split=args.split, seed=args.seed)
    print(f"wrote {path}")
    return 0


def _cmd_frame_stats(args: argparse.Namespace) -> int:
    from models.datatools import framestats

    doc = framestats.measure(args.paths, every=args.every, max_frames=args.max_frames)
    print(framestats.format_table(doc))
    if args.json:
        framestats.write_json(doc, args.json)
        print(f"wrote {args.json}")
    if args.markdown:
        framestats.write_markdown(doc, args.markdown)
        print(f"wrote {args.markdown}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from models.core.errors import EndoSpineError
    from models.train.config import ExtraData, TrainConfig
    from models.train.loop import train

    extra = tuple(ExtraData.parse(e) for e in args.extra_data) or None
    cfg = TrainConfig.load(args.config, model=args.net, iters=args.iters, batch_size=args.batch_size,
                           lr=args.lr, input_size=args.input_size, seed=args.seed, workers=args.workers,
                           eval_every=args.eval_every, extra_data=extra, profile=args.profile,
                           init=args.init, freeze_backbone=args.freeze_backbone)
    if cfg.freeze_backbone and not cfg.init:
        raise EndoSpineError("command line: --freeze-backbone needs --init (a fresh encoder must train)")
    summary = train(args.data, args.out, cfg, resume=args.resume, trust_pickle=args.trust_pickle,
                    progress=show_progress(args))
    print(f"best validation mean IoU (tissues) {summary['best_val_miou']:.4f} at step {summary['best_step']}; "
          f"run in {args.out}")
    return 0


def _cmd_curve(args: argparse.Namespace) -> int:
    from models.core.runtime.backends import RuntimeSettings
    from models.curve import Start, learning_curve, markdown, parse_ints
    from models.train.config import TrainConfig

    cfg = TrainConfig.load(args.config, iters=args.iters, batch_size=args.batch_size, eval_every=args.eval_every)
    sizes, seeds = parse_ints(args.sizes, "sizes", 1), parse_ints(args.seeds, "seeds", 0)
    starts = Start.parse_all(args.init)
    # auto: Paddle, as the curve's models are exported without model.onnx
    settings = RuntimeSettings(backend=resolve_backend(args.backend, None), threads=args.threads)
    doc = learning_curve(args.data, args.out, cfg, sizes, starts, seeds, settings=settings,
                         keep_models=args.keep_models, progress=show_progress(args))
    print(markdown(doc), end="")
    print(f"curve in {args.out}/curve.md, curve.png, curve.json")
    return 0


def _test_figures(test: dict) -> str:
    """'test mean IoU (tissues) 0.8123 [0.79, 0.83] on 360 images of 36 clips' (interval when present)."""
    def fig(key: str) -> str:
        ci = (test.get("ci95") or {}).get(key, {}).get("iou")
        return f"{test[key]['iou']:.4f}" + (f" [{ci[0]:.4f}, {ci[1]:.4f}]" if ci else "")
    text = f"test mean IoU (tissues) {fig('mean')}"
    if "mean_paper" in test:
        text += f", bone/ligament/disc {fig('mean_paper')}"
    clips = f" of {plural(test['clips'], 'clip')}" if test.get("clips") else ""
    return text + f" on {plural(test['images'], 'image')}{clips}"


def _cmd_export(args: argparse.Namespace) -> int:
    from models.export import export_run

    m = export_run(args.run, args.out, onnx=args.onnx, test_data=args.test_data, notice=args.notice,
                   trust_pickle=args.trust_pickle, sign_key=args.sign_key, gate=not args.no_gate,
                   int8=args.int8, progress=show_progress(args))
    test = m.metrics.get("test") or {}
    figures = _test_figures(test) if test else "no test split"
    signed = f"; signed with key {m.signature['key']}" if m.signature else ""
    int8 = f"; {_int8_figures(m.metrics['int8'])}" if "int8" in m.metrics else ""
    print(f"exported {m.model_id} to {args.out}: {figures}; export parity max abs "
          f"{m.metrics['export_parity_max_abs']:.2e}{int8}{signed}")
    return 0


def _int8_figures(section: dict) -> str:
    """'INT8 (64 calibration images): test mean IoU (tissues) 0.8700 vs FP32 0.8702 (-0.0002) on 360
    images of 36 clips'."""
    t = section["test"]
    return (f"INT8 ({plural(section['calibration']['images'], 'calibration image')}): test mean IoU (tissues) "
            f"{t['int8_miou']:.4f} vs FP32 {t['fp32_miou']:.4f} ({t['miou_difference']:+.4f}) on "
            f"{plural(t['images'], 'image')} of {plural(t['clips'], 'clip')}")


def _cmd_quantize(args: argparse.Namespace) -> int:
    from models.core.signing import load_private_key
    from models.quantize import INT8_FILE, add_int8_file

    signer = load_private_key(args.sign_key) if args.sign_key else None   # a bad key file fails before any work
    doc = add_int8_file(args.model, args.data, test_data=args.test_data, profile=args.profile,
                        images=args.calibration_images, signer=signer, progress=show_progress(args),
                        replace=args.replace)
    signed = f", signed with key {doc['integrity']['signature']['key']}" if "signature" in doc["integrity"] else ""
    print(f"wrote {args.model}/{INT8_FILE}: {_int8_figures(doc)}; manifest sealed again{signed}")
    return 0


def _cmd_keygen(args: argparse.Namespace) -> int:
    from models.core.signing import fingerprint, generate_key_pair, read_public_key

    private, public = generate_key_pair(args.out, args.name)
    print(f"wrote {private} (private: keep it where models are approved; mode 0600) and {public} "
          f"(key {fingerprint(read_public_key(public))}); sign with 'endospine-model sign MODEL --key {private}', "
          f"trust in a profile with 'trust: {{public_key: {public.resolve()}}}'")
    return 0


def _cmd_sign(args: argparse.Namespace) -> int:
    from models.core.runtime.manifest import sign_model_folder
    from models.core.signing import load_private_key

    integrity = sign_model_folder(args.model, load_private_key(args.key))
    print(f"signed {args.model} (manifest sha256 {integrity['manifest_sha256'][:16]}...) with key "
          f"{integrity['signature']['key']}")
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from models.predict import predict_dataset

    out = predict_dataset(args.model, args.data, args.out, split=args.split, probs=args.probs,
                          settings=runtime_settings(args, args.model), progress=show_progress(args))
    print(f"wrote label maps to {out}")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from models.evaluate.run import evaluate
    from models.evaluate.summary import headline

    doc = evaluate(args.data, args.out, split=args.split, model_dir=args.model, pred_dir=args.pred,
                   settings=runtime_settings(args, args.model), gallery=args.gallery, bootstrap=args.bootstrap,
                   seed=args.seed, progress=show_progress(args))
    print(f"{headline(doc)}; report in {args.out}/report.html")
    return 0


def _cmd_gate_check(args: argparse.Namespace) -> int:
    from models.evaluate.gatecheck import gate_check
    from models.evaluate.gatesummary import console_lines

    doc = gate_check(args.model, args.ins, args.oods, args.out, split=args.split, corrupt_data=args.corrupt,
                     max_images=args.max_images, settings=runtime_settings(args, args.model),
                     progress=show_progress(args))
    for line in console_lines(doc):
        print(line)
    print(f"report in {args.out}/report.html")
    return 0


def _cmd_reader_study(args: argparse.Namespace) -> int:
    from models.reader_study.run import reader_study
    from models.reader_study.study import parse_reader

    findings = reader_study(args.reference, [parse_reader(r) for r in args.reader], args.out, split=args.split,
                            model_dir=args.model, pred_dir=args.pred, classes_file=args.classes,
                            settings=runtime_settings(args, args.model), alpha=args.alpha,
                            progress=show_progress(args))
    for paragraph in findings.conclusion:
        print(paragraph)
    print(f"report in {args.out}/report.html")
    return 0


def _cmd_simulate_readers(args: argparse.Namespace) -> int:
    from models.reader_study.simulate import simulate_readers

    levels = tuple(v.strip() for v in args.levels.split(",") if v.strip())
    out = simulate_readers(args.data, args.out, split=args.split, seed=args.seed, levels=levels,
                           progress=show_progress(args))
    print(f"wrote SIMULATED readers {', '.join(levels)} to {out}")
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from models.bench import main_bench

    print(main_bench(args.model, runs=args.runs, threads=args.threads, native=not args.onednn_only,
                     backend=args.backend))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="endospine-model", description=__doc__)
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    p = sub.add_parser("synth", help="render a labeled synthetic lumbar endoscopy dataset (or a video)",
                       description="Render synthetic lumbar endoscopy frames with exact labels. Without --video: a "
                                   "dataset (images, label PNGs, dataset.yaml, train/val/test lists split by clip). "
                                   "With --video: one continuous clip as an H.264 video, label PNGs per frame in --out.")
    p.add_argument("--out", required=True, help="output folder (must not exist or be empty)")
    p.add_argument("--clips", type=positive_int, default=60, help="number of clips (scenes) (default 60)")
    p.add_argument("--frames", type=positive_int, default=50, help="frames per clip, or video length in frames (default 50)")
    p.add_argument("--size", type=positive_int, default=512, help="square image side in pixels (default 512)")
    p.add_argument("--stride", type=positive_int, default=8, help="clip frames between dataset frames (default 8)")
    p.add_argument("--seed", type=non_negative_int, default=0, help="random seed: same seed, same pixels (default 0)")
    p.add_argument("--ratios", default="0.8,0.1,0.1", help="train,val,test share of images, split by clip")
    p.add_argument("--workers", type=positive_int, default=max(1, min(2, os.cpu_count() or 1)),
                   help="render processes (default: up to 2)")
    g = p.add_argument_group("video")
    g.add_argument("--video", metavar="OUT.mp4", help="write one clip as an H.264 video instead of a dataset")
    g.add_argument("--resolution", default="1920x1080", help="video WIDTHxHEIGHT (default 1920x1080)")
    g.add_argument("--fps", type=float, default=30.0, help="video frame rate (default 30)")
    g.add_argument("--clip", type=non_negative_int, default=0, help="which clip of the seed to render (default 0)")
    g.add_argument("--crf", type=non_negative_int, default=23, help="x264 quality, lower is better (default 23)")
    p.set_defaults(func=_cmd_synth)

    p = sub.add_parser("sheet", help="contact sheet: dataset images beside their label maps, as a PNG")
    p.add_argument("data", help="dataset folder")
    p.add_argument("--out", required=True, help="output PNG")
    p.add_argument("--n", type=positive_int, default=12, help="number of images (default 12)")
    p.add_argument("--split", default="all", choices=["all", "train", "val", "test"], help="which images (default all)")
    p.add_argument("--seed", type=non_negative_int, default=0, help="which random sample (default 0)")
    p.set_defaults(func=_cmd_sheet)
    _add_frame_stats_command(sub)
    _add_dataset_commands(sub)

    p = sub.add_parser("train", help="train a segmentation network on a dataset (best model by validation mean IoU)",
                       description="Train from scratch, or fine-tune from --init. Settings: built-in defaults < "
                                   "--config FILE (its keys are the settings' names; the network is 'model:') < "
                                   "flags; a flag left out keeps the config's value, and the defaults shown are the "
                                   "built-in ones. Multi-GPU: python -m paddle.distributed.launch --devices 0,1 "
                                   "$(which endospine-model) train ...")
    p.add_argument("--data", required=True, metavar="DIR", help="dataset folder (train and val splits used)")
    p.add_argument("--out", required=True, metavar="RUN", help="run folder (checkpoints, train.log, metrics)")
    p.add_argument("--config", metavar="FILE", help="YAML file of training settings (see models/configs/ and "
                   "models/train/config.py)")
    p.add_argument("--extra-data", action="append", default=[], metavar="DIR[:RATIO]",
                   help="extra training dataset drawn for RATIO of each batch (default 0.3); repeatable")
    d = {k: f"(default: the config's, else {v})" for k, v in TRAIN_DEFAULTS.items()}
    p.add_argument("--net", choices=NETS, help=f"network: liteseg-cpu (CPU) or liteseg-gpu (GPU/TensorRT) {d['model']}")
    p.add_argument("--model", dest="net", action=Deprecated, new="--net", accepted=NETS,
                   hint=f"train's network is --net ({', '.join(NETS)}); to start from an exported model folder "
                        "use --init MODEL_DIR")
    p.add_argument("--iters", type=positive_int, help=f"training steps {d['iters']}")
    p.add_argument("--batch-size", type=positive_int, help=f"images per step {d['batch_size']}")
    p.add_argument("--lr", type=float, help=f"peak learning rate {d['lr']}")
    p.add_argument("--input-size", type=positive_int, help=f"square model input side, a multiple of 128 "
                   f"{d['input_size']}")
    p.add_argument("--eval-every", type=positive_int, help=f"steps between validations {d['eval_every']}")
    p.add_argument("--workers", type=non_negative_int, help=f"data loading processes {d['workers']}")
    p.add_argument("--seed", type=non_negative_int, help=f"random seed {d['seed']}")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--init", metavar="MODEL_DIR|RUN",
                   help="fine-tune: start from an exported model folder or a training run (class rows matched by name)")
    p.add_argument("--freeze-backbone", type=non_negative_int, metavar="N",
                   help=f"with --init: keep the encoder fixed for the first N steps {d['freeze_backbone']}")
    _add_trust_flag(p)
    p.add_argument("--profile", metavar="FILE",
                   help="endoscope profile of the tower that recorded --data (endospine-calibrate); default: automatic FOV")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("curve", help="learning curve: test Dice over label budgets, starting points and seeds",
                       description="For every budget, start and seed: train on that many train-split images "
                                   "(nested budgets, spread over clips), keep the best checkpoint on the whole val "
                                   "split, export it and evaluate it on the test split. Writes curve.json, curve.png "
                                   "and curve.md; finished runs are kept in results/, so running the same command "
                                   "again continues an interrupted curve.")
    p.add_argument("--data", required=True, metavar="DIR", help="dataset folder with train, val and test splits")
    p.add_argument("--out", required=True, metavar="DIR", help="curve folder (runs/, results/, curve.*)")
    p.add_argument("--sizes", required=True, metavar="N,N,...", help="label budgets, e.g. 50,100,200,400,800")
    p.add_argument("--init", default="scratch", metavar="START,...",
                   help="starting points: scratch, a model folder or run, or NAME=PATH (default scratch)")
    p.add_argument("--seeds", default="0", metavar="K,K,...", help="seeds: images drawn and training randomness")
    p.add_argument("--config", help="YAML file of training settings, as for train (its init is ignored)")
    p.add_argument("--iters", type=positive_int, help="training steps of every run (default: the config's)")
    p.add_argument("--batch-size", type=positive_int, help="images per step (default: the config's)")
    p.add_argument("--eval-every", type=positive_int, help="steps between validations (default: the config's)")
    p.add_argument("--keep-models", action="store_true", help="keep every run's weights and exported model")
    add_backend(p, help="inference backend of the test evaluation (auto: Paddle, as the curve exports its "
                        "models without model.onnx)")
    p.add_argument("--threads", type=positive_int, default=2, help="CPU threads of the test evaluation")
    p.set_defaults(func=_cmd_curve)

    p = sub.add_parser("export", help="export a run's best model for Paddle Inference, with manifest.yaml")
    p.add_argument("run", help="training run folder")
    p.add_argument("--out", required=True, help="model folder to create")
    p.add_argument("--onnx", action="store_true", help="also write model.onnx (needs endospine[onnx])")
    p.add_argument("--test-data", help="dataset whose test split goes into the manifest (default: the training dataset)")
    p.add_argument("--notice", help="usage notice stored in the manifest (default: chosen from the training data)")
    p.add_argument("--no-gate", action="store_true",
                   help="export without the trust gate (the display then says that its overlay is not gated)")
    p.add_argument("--int8", action="store_true",
                   help="with --onnx: also model.int8.onnx (ONNX Runtime static quantization calibrated on the "
                        "training split), its test mean IoU against FP32 in the manifest (as 'quantize' does)")
    _add_trust_flag(p)
    p.add_argument("--sign-key", metavar="KEY.pem",
                   help="Ed25519 private key (endospine-model keygen): sign the manifest, so towers whose profile "
                        "trusts the key run it")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("quantize", help="add an INT8 model (model.int8.onnx) to an exported folder with model.onnx",
                       description="Check the model folder (sealed manifest, every file's SHA-256), make "
                                   "model.int8.onnx from its model.onnx with ONNX Runtime's static quantization, "
                                   "the activation ranges calibrated on frames of --data's training split prepared "
                                   "as the runtime prepares them, measure the test split's mean IoU (tissues) of "
                                   "FP32 and INT8 on ONNX Runtime as 'evaluate' does, and list the file and the "
                                   "figures (metrics.int8) in the manifest, sealed again with a history line. "
                                   "Run it with --precision int8 (run, render, bench, predict, evaluate, ...).")
    p.add_argument("model", metavar="MODEL_DIR", help="exported model folder with model.onnx (export --onnx)")
    p.add_argument("--data", required=True, metavar="DIR",
                   help="dataset whose training split calibrates (and whose test split measures, without --test-data)")
    p.add_argument("--test-data", metavar="DIR", help="dataset whose test split measures INT8 against FP32 "
                   "(default: --data)")
    p.add_argument("--calibration-images", type=positive_int, default=64, metavar="N",
                   help="training images to calibrate on, spread evenly over the split")
    p.add_argument("--profile", metavar="FILE", help="endoscope profile of the datasets' tower (default: automatic "
                   "field of view, no color change)")
    p.add_argument("--replace", action="store_true",
                   help="the folder has an INT8 model: make it anew (e.g. with a newer quantizer) and swap it in once "
                        "it is made and measured; until then the folder keeps the old one")
    p.add_argument("--sign-key", metavar="KEY.pem",
                   help="Ed25519 private key: required for a signed folder (the seal changes, so it is signed again)")
    p.set_defaults(func=_cmd_quantize)

    p = sub.add_parser("keygen", help="make an Ed25519 key pair for signing models (NAME.key.pem, NAME.pub.pem)",
                       description="Write a new Ed25519 key pair: the private key signs models (export --sign-key, "
                                   "sign); the public key goes into an endoscope profile's 'trust: {public_key: "
                                   "FILE}', and the display then runs only models signed with it. Same as "
                                   "'openssl genpkey -algorithm ed25519' and 'openssl pkey -pubout'.")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the key files (never overwritten)")
    p.add_argument("--name", default="model-signing", help="file name stem (default model-signing)")
    p.set_defaults(func=_cmd_keygen)

    p = sub.add_parser("sign", help="sign an exported model folder as it is (after checking every file)",
                       description="Check the model folder (sealed manifest, every file's SHA-256, ONNX external "
                                   "data) and add an Ed25519 signature over its manifest's seal. The content is "
                                   "not changed; an existing signature is replaced.")
    p.add_argument("model", metavar="MODEL_DIR", help="exported model folder")
    p.add_argument("--key", required=True, metavar="KEY.pem", help="Ed25519 private key (endospine-model keygen)")
    p.set_defaults(func=_cmd_sign)

    p = sub.add_parser("predict", help="label PNGs (and probabilities) for every image of a dataset split")
    p.add_argument("--model", required=True, metavar="MODEL_DIR", help="exported model folder")
    p.add_argument("--data", required=True, metavar="DIR", help="dataset folder")
    p.add_argument("--split", default="test", choices=["train", "val", "test", "all"], help="which images (default test)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (<image stem>.png, class ids)")
    p.add_argument("--probs", action="store_true", help="also <stem>.probs.npz: uint8 class probabilities")
    add_runtime_options(p)
    p.set_defaults(func=_cmd_predict)

    _add_evaluation_commands(sub)

    p = sub.add_parser("bench", help="time an exported model on this CPU (oneDNN vs native, ONNX Runtime), JSON out",
                       description="Time the exported model, tensor in, probabilities out, each configuration in "
                                   "fresh processes over alternating rounds; prints one JSON line with medians, "
                                   "90th percentiles and ratios to Paddle + oneDNN.")
    p.add_argument("--model", required=True, metavar="MODEL_DIR", help="exported model folder")
    add_backend(p, help="backends to time; auto: every one this model runs on and compares them (Paddle with "
                        "oneDNN, Paddle native unless --onednn-only, ONNX Runtime when the model has model.onnx, "
                        "FP32 and INT8 side by side when it also has model.int8.onnx); paddle or onnxruntime: only "
                        "that one")
    p.add_argument("--runs", type=positive_int, default=50, help="timed runs per configuration, spread over up to "
                   "3 rounds (default 50)")
    p.add_argument("--threads", type=positive_int, default=2, help="CPU threads (default 2)")
    p.add_argument("--onednn-only", action="store_true", help="skip the (slow) native CPU comparison")
    p.set_defaults(func=_cmd_bench)
    _add_gan_commands(sub)
    check_before(sub, OUTPUTS)
    return common_options(parser)


def _add_trust_flag(p) -> None:
    """--trust-pickle: the one way to load a checkpoint of an older version (models/train/checkpoint.py)."""
    p.add_argument("--trust-pickle", action="store_true",
                   help="also load checkpoints written by older versions (.pdparams/.pdopt): they are pickle "
                        "files, and loading one runs any code it holds; only for files you made yourself")


def _add_gan_commands(sub) -> None:
    """gan train|synthesize|quality|ablation (parsers and handlers in models/gan/commands.py)."""
    from models.gan.commands import add_gan_commands

    add_gan_commands(sub, _add_trust_flag)


def _add_evaluation_commands(sub) -> None:
    """evaluate, reader-study, simulate-readers (models/evaluate, models/reader_study)."""
    from models.core.cliutil import number
    from models.reader_study.simulate import SKILLS

    def runtime_flags(p) -> None:
        add_runtime_options(p, profile_help="endoscope profile of the images' tower, for --model (default: "
                                            "automatic field of view, no color change)")

    p = sub.add_parser("evaluate", help="the paper's figures, ROC/AUC, per-image/per-clip tables, HTML report",
                       description="Judge a model (or the label PNGs `predict` wrote) on a dataset split: per class "
                                   "accuracy, precision, recall, IoU, Dice and (with --model) ROC/AUC over all valid "
                                   "pixels; confusion matrix; per-image and per-clip CSV; PNGs and a self-contained "
                                   "report.html with the best and worst images.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", metavar="MODEL_DIR", help="exported model folder (run on every image)")
    src.add_argument("--pred", metavar="DIR", help="folder of <image stem>.png label maps (no ROC/AUC)")
    p.add_argument("--data", required=True, metavar="DIR", help="dataset folder (reference labels)")
    p.add_argument("--split", default="test", choices=["train", "val", "test", "all"], help="which images (default test)")
    p.add_argument("--out", required=True, metavar="REPORT_DIR", help="report folder (must not exist or be empty)")
    p.add_argument("--gallery", type=non_negative_int, default=6, metavar="N",
                   help="best and worst images shown (default 6 each)")
    p.add_argument("--bootstrap", type=non_negative_int, default=2000, metavar="N",
                   help="resamples of the split's clips for the 95%% interval of every figure (default 2000; "
                        "0: no intervals)")
    p.add_argument("--seed", type=non_negative_int, default=0, help="seed of the resampling (default 0)")
    runtime_flags(p)
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("gate-check", help="the trust gate's scores on in- and out-of-distribution images, "
                                          "AUROC, corrupted frames; HTML report",
                       description="Score every image of each --in and --ood folder (a folder of images, or a "
                                   "dataset folder: its --split) with the model's trust gate; pass = score <= the "
                                   "manifest's threshold. Writes scores.csv, summary.json (pass rates, score "
                                   "percentiles, exact AUROC of in vs ood), scores.png, roc.png and report.html. "
                                   "--corrupt DATASET: its split clean and under heavy blur, smoke, blood, over- "
                                   "and under-exposure (two severities each), with each frame's mean IoU, the "
                                   "AUROC of the score for mean IoU < 0.5 and error.png.")
    p.add_argument("--model", required=True, metavar="MODEL_DIR", help="exported model folder with a trust gate")
    p.add_argument("--in", dest="ins", action="append", required=True, metavar="DIR",
                   help="images like the training data: a folder of images or a dataset folder; repeatable")
    p.add_argument("--ood", dest="oods", action="append", required=True, metavar="DIR",
                   help="images unlike the training data: a folder of images or a dataset folder; repeatable")
    p.add_argument("--out", required=True, metavar="REPORT_DIR", help="report folder (must not exist or be empty)")
    p.add_argument("--split", default="test", choices=["train", "val", "test", "all"],
                   help="which images of a dataset folder (default test)")
    p.add_argument("--corrupt", metavar="DATASET_DIR",
                   help="also score this dataset's split corrupted (10 renderings per image) against its labels")
    p.add_argument("--max-images", type=positive_int, metavar="N",
                   help="at most N images per folder, spread evenly over it (default: all)")
    runtime_flags(p)
    p.set_defaults(func=_cmd_gate_check)

    p = sub.add_parser("reader-study", help="readers and the model against a reference: IoU/Dice, tests, report",
                       description="Score each reader's label PNGs and the model against the reference, image by "
                                   "image (IoU and Dice over tissues), rank them, test for differences (Friedman, "
                                   "Holm-corrected Wilcoxon signed-rank, one-way ANOVA) and write a report whose "
                                   "conclusion is derived from the numbers. Readers with reader.yaml "
                                   "'simulated: true' are marked SIMULATED.")
    p.add_argument("--reference", required=True, metavar="DIR",
                   help="dataset folder (its --split) or a folder of reference label PNGs")
    p.add_argument("--reader", action="append", required=True, metavar="NAME=DIR",
                   help="a reader's folder of <image stem>.png label maps; repeatable")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", metavar="MODEL_DIR", help="exported model, run on the reference dataset's images")
    src.add_argument("--pred", metavar="DIR", help="folder of the model's <image stem>.png label maps")
    p.add_argument("--out", required=True, metavar="DIR", help="report folder (must not exist or be empty)")
    p.add_argument("--split", default="test", choices=["train", "val", "test", "all"],
                   help="split of a dataset reference (default test)")
    p.add_argument("--classes", metavar="FILE", help="class table of a label-folder reference (default assets/classes.yaml)")
    p.add_argument("--alpha", type=number(float, 0.0001, 0.5), default=0.05, help="significance level (default 0.05)")
    runtime_flags(p)
    p.set_defaults(func=_cmd_reader_study)

    p = sub.add_parser("simulate-readers", help="SIMULATED junior/intermediate/senior readers from a dataset's labels",
                       description="Perturb the reference label maps of a split at three skill levels (boundary "
                                   "noise, missed thin structures, class confusions) and write one folder of "
                                   "<image stem>.png per level, each with reader.yaml marking it simulated. For "
                                   "demonstration studies only: these are not surgeons.")
    p.add_argument("--data", required=True, metavar="DIR", help="dataset folder")
    p.add_argument("--split", default="test", choices=["train", "val", "test", "all"], help="which images (default test)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (one sub-folder per level)")
    p.add_argument("--seed", type=non_negative_int, default=0, help="random seed (default 0)")
    p.add_argument("--levels", default="junior,intermediate,senior", metavar="L1,L2,...",
                   help=f"skill levels to write (known: {', '.join(SKILLS)})")
    p.set_defaults(func=_cmd_simulate_readers)


def _add_frame_stats_command(sub) -> None:
    """frame-stats: appearance inside the field of view vs. the real reference (models/datatools/framestats.py)."""
    p = sub.add_parser("frame-stats", help="color, exposure and detail statistics inside the field of view, "
                                           "compared with real endoscopy frames",
                       description="Measure frames inside their circular field of view (rim-safe interior): mean "
                                   "R, G, B, R/G, B/G, median hue, saturation and value, white (glare) share and "
                                   "detail512 (Laplacian variance at a 512 px field of view); per statistic the "
                                   "median [min, max] over frames, compared with the real reference ranges built "
                                   "in (models/datatools/framestats.py). Exit 1 if no frame has a field of view.")
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="image files, folders of images (recursive; a dataset folder: its images/) or video files")
    p.add_argument("--every", type=positive_int, default=30, metavar="N",
                   help="from videos, every N-th decoded frame (default 30)")
    p.add_argument("--max-frames", type=positive_int, metavar="N", help="read at most N frames in all")
    p.add_argument("--json", metavar="OUT.json", help="also write everything, per-frame values too, as JSON")
    p.add_argument("--markdown", metavar="OUT.md", help="also write the table as markdown")
    p.set_defaults(func=_cmd_frame_stats)


def _split_unit(text: str) -> str:
    """split --by: 'image' gets the reason it is not offered, not just 'invalid choice'."""
    if text == "image":
        raise argparse.ArgumentTypeError("there is no split by image: frames of one clip in different splits "
                                         "leak (near-identical frames in train and test); independent images are "
                                         "each their own clip, so '--by clip' already splits them image by image")
    return text


def _add_dataset_commands(sub) -> None:
    """extract, import, prelabel, validate, split: the dataset tools (handlers in models/datatools/commands.py)."""
    from models.datatools import commands as c
    from models.datatools.common import default_workers

    p = sub.add_parser("extract", help="pick frames worth labeling from surgery videos (unlabeled frame set)",
                       description="Decode each video, take every N-th frame as a candidate, drop dark, blown-out, "
                                   "blurry and near-duplicate ones, and write images/<clip>_<frame>.png plus "
                                   "frames.yaml (clip = video file stem, frame index, pts, measures, drop counts). "
                                   "Frames are de-identified: every pixel outside the endoscope's circle is black.")
    p.add_argument("videos", nargs="+", metavar="VIDEO", help="video files; each is one clip (id = file stem)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (must not exist or be empty)")
    p.add_argument("--every", type=positive_int, default=15, metavar="N",
                   help="candidate every N decoded frames (default 15)")
    p.add_argument("--max-per-clip", type=positive_int, metavar="N",
                   help="keep at most N frames per clip, spread in time")
    p.add_argument("--min-sharpness", type=c.non_negative_float, default=15.0, metavar="X",
                   help="least variance of the Laplacian inside the field of view, at <=640 px wide (default 15)")
    p.add_argument("--dup-threshold", type=c.fraction, default=0.1, metavar="X",
                   help="dHash distance (0..1) under which frames of a clip are duplicates; 0 keeps all (default 0.1)")
    p.add_argument("--max-dark", type=c.fraction, default=0.4, metavar="F",
                   help="drop when more of the FOV than this is dark (default 0.4)")
    p.add_argument("--max-bright", type=c.fraction, default=0.2, metavar="F",
                   help="drop when more of the FOV than this is blown out (default 0.2)")
    p.add_argument("--format", choices=["png", "jpg"], default="png", help="image file format (default png)")
    p.add_argument("--classes", metavar="FILE",
                   help="class table the frames will be labeled with (default assets/classes.yaml)")
    p.add_argument("--region", metavar="CX,CY,R",
                   help="the field of view to keep, a circle in pixels (default: found in each frame)")
    p.add_argument("--profile", metavar="FILE", help="endoscope profile whose fixed circle is the field of view to keep")
    p.add_argument("--keep-full-frame", action="store_true",
                   help="write whole frames, NOT de-identified: text the video tower burns in around the picture "
                        "(patient name, dates, record number) stays (default: every pixel outside the field of "
                        "view black)")
    p.set_defaults(func=c.cmd_extract)

    p = sub.add_parser("import", help="labeled images from PaddleSeg, Labelme, CVAT or mask folders -> dataset",
                       description="Build an EndoSpine dataset (images/, labels/ of class ids, dataset.yaml, and the "
                                   "source's train/val/test lists when it has them). Each image is its own clip "
                                   "unless --clip-from says otherwise.")
    p.add_argument("format", choices=["paddleseg", "labelme", "cvat", "masks"], help="source format")
    p.add_argument("src", metavar="SRC", help="source folder (or one PaddleSeg list file, or one Labelme JSON)")
    p.add_argument("--out", required=True, metavar="DIR", help="output dataset folder (must not exist or be empty)")
    p.add_argument("--classes", metavar="FILE", help="class table YAML (default assets/classes.yaml)")
    p.add_argument("--map", metavar="FILE",
                   help="YAML: source label name, mask value or 'R,G,B' color -> class name, id or 'ignore'")
    p.add_argument("--clip-from", metavar="REGEX",
                   help="regex searched in the image's relative name without suffix: group 1 = clip id, optional "
                        "group 2 = frame index (extracted frames: '^(.+)_(\\d+)$'); default: each image its own clip")
    p.add_argument("--threshold", type=c.check_threshold, metavar="T",
                   help="read masks as binary: gray >= T is class 1 (JPEG masks are read so with T=128)")
    p.add_argument("--workers", type=positive_int, default=default_workers(), metavar="N",
                   help="reader threads (default: up to 4)")
    p.set_defaults(func=c.cmd_import)

    p = sub.add_parser("prelabel", help="a model's masks as Labelme or CVAT pre-labels, most doubtful images first",
                       description="Segment every image directly in --images with the exported model and write "
                                   "Labelme JSONs (polygons, images copied alongside) or a CVAT 'Segmentation mask "
                                   "1.1' export, plus prelabel.csv: the trust gate's score per image, most "
                                   "doubtful first. `import labelme|cvat` reads the result back.")
    p.add_argument("--model", required=True, metavar="MODEL_DIR", help="exported model folder")
    p.add_argument("--images", required=True, metavar="DIR", help="folder of images (files directly in it)")
    p.add_argument("--format", required=True, choices=["labelme", "cvat"], help="annotation tool format")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (must not exist or be empty)")
    p.add_argument("--min-area", type=non_negative_int, default=16, metavar="PX",
                   help="labelme: drop regions (and holes) of fewer pixels (default 16)")
    p.add_argument("--simplify", type=c.non_negative_float, default=0.5, metavar="PX",
                   help="labelme: outline points may be dropped within PX of the outline (default 0.5; 0: exact)")
    add_runtime_options(p)
    p.set_defaults(func=c.cmd_prelabel)

    p = sub.add_parser("validate", help="check a dataset; list every problem by file; exit 1 if any",
                       description="Check every image/label pair, the class ids, the split lists and the by-clip "
                                   "rule, and print class pixel counts. Problems are reported, never fixed.")
    p.add_argument("data", metavar="DIR", help="dataset folder")
    p.add_argument("--report", metavar="FILE", help="also write the report (.json, .yaml, or text for other suffixes)")
    p.add_argument("--all", action="store_true", help="print every problem (default: the first 50)")
    p.add_argument("--workers", type=positive_int, default=default_workers(), metavar="N",
                   help="reader threads (default: up to 4)")
    p.set_defaults(func=c.cmd_validate)

    p = sub.add_parser("split", help="rewrite train/val/test.txt with whole clips per split",
                       description="Assign whole clips to train/val/test by the ratios (counted in images), seeded. "
                                   "There is no split by image: frames of one clip are near copies of each other, "
                                   "and some in train with others in test would leak. Independent images are each "
                                   "their own clip (the import default), so the split by clip already splits them "
                                   "image by image.")
    p.add_argument("data", metavar="DIR", help="dataset folder")
    p.add_argument("--by", type=_split_unit, choices=["clip"], default="clip",
                   help="unit of splitting: whole clips (the only one; see above)")
    p.add_argument("--ratios", default="0.8,0.1,0.1", metavar="T,V,T",
                   help="train,val,test share of images (default 0.8,0.1,0.1)")
    p.add_argument("--seed", type=non_negative_int, default=0, metavar="S", help="random seed (default 0)")
    p.set_defaults(func=c.cmd_split)


def main(argv: Sequence[str] | None = None) -> int:
    return run(build_parser(), argv)


if __name__ == "__main__":
    raise SystemExit(main())
