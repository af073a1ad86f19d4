"""Blind deblurring in the learned kernel space: ``deblur``."""

from __future__ import annotations

from ..models.pretrained import DEFAULT_MODEL

import dataclasses

from .common import NON_NEGATIVE, POSITIVE, SEED, float_in, floats, load_callable, model_and_bank
from ..paths import IMAGE_SUFFIXES, MODEL_SUFFIXES, check_output


def _cmd_deblur(args) -> None:
    from ..models.checkpoint import write_safetensors
    from ..data.pairs import read_image
    from ..deblur.blind import deblur_generator, deblur_generic, resolve_preset
    from ..tools.pictures import write_picture
    from ..models.pretrained import PRETRAINED
    from ..tools.transfer import to_tensor, to_uint8

    out = check_output(args.out, "--out", IMAGE_SUFFIXES, inputs=[args.input])
    if args.save_code:
        check_output(args.save_code, "--save-code", MODEL_SUFFIXES, inputs=[args.input])
    blurry = to_tensor(read_image(args.input))
    model, bank = model_and_bank(args, need_bank=args.model in PRETRAINED and bool(PRETRAINED[args.model].bank_file))
    start = args.start
    if start is None:
        start = "mean" if bank is not None else "extract"

    def on_save(step, image):
        write_picture(out.with_name(f"{out.stem}_{step:05d}{out.suffix}"), to_uint8(image))

    preset = resolve_preset(args.preset)
    if args.centre_weight is not None:
        preset = dataclasses.replace(preset, centre_weight=args.centre_weight)
    common = dict(bank=bank, start_code=start, preset=preset, iterations=args.iterations,
                  warmup_iterations=args.warmup, seed=args.seed, save_every=args.save_every,
                  on_save=on_save if args.save_every else None,
                  features=load_callable(args.features, "--features") if args.features else None)
    if args.prior == "generator":
        if not args.generator:
            raise ValueError("--prior generator needs --generator module:callable")
        generator = load_callable(args.generator, "--generator").to(next(model.parameters()).device)
        shape = args.latent_shape or getattr(generator, "latent_shape", None)
        if shape is None:
            raise ValueError("give --latent-shape (e.g. 1,512) or a generator with a latent_shape attribute")
        if isinstance(shape, str):
            shape = tuple(int(v) for v in floats(shape, "--latent-shape"))
        result = deblur_generator(blurry, model, generator, shape, sphere=not args.no_sphere,
                                  output_range=floats(args.output_range, "--output-range", 2), **common)
    elif args.generator:
        raise ValueError("--generator is only used with --prior generator")
    else:
        result = deblur_generic(blurry, model, **common)
    write_picture(out, to_uint8(result.sharp))
    if args.save_code:
        write_safetensors(args.save_code, {"code": result.code.contiguous()}, metadata={})
    final = result.losses[-1] if result.losses else float("nan")
    print(f"deblurred {args.input} ({blurry.shape[-1]}x{blurry.shape[-2]}) with the {args.prior} prior, "
          f"{len(result.losses)} iterations in {result.seconds:.0f} s, final loss {final:.4f} -> {out}")


def add_parsers(commands) -> None:
    p = commands.add_parser("deblur", help="blind deblurring of one image in the model's learned kernel space")
    p.add_argument("input", help="blurry image file")
    p.add_argument("--out", required=True, help="output image file (PNG recommended)")
    p.add_argument("--model", default=DEFAULT_MODEL, help="a .safetensors model file or a pretrained name")
    p.add_argument("--bank", help="kernel bank of the model (default: the pretrained model's own bank)")
    p.add_argument("--start", choices=["mean", "extract"], help="starting code: the bank's mean code "
                   "(default with a bank) or G(y, y)")
    p.add_argument("--preset", default="cpu", choices=["cpu", "gpu"],
                   help="cpu: ~10 min for 256x256 on 2 cores; gpu: the paper's DIP sizes and 5000 iterations")
    p.add_argument("--iterations", type=POSITIVE, help="main iterations (default: the preset's)")
    p.add_argument("--warmup", type=NON_NEGATIVE, help="warm-up iterations per DIP (default: the preset's)")
    p.add_argument("--save-every", type=NON_NEGATIVE, default=0, help="also write OUT_<step>.<ext> every K iterations")
    p.add_argument("--centre-weight", type=float_in(0), help="weight of the PSF-centring term (default 1e-3; 0: the paper's "
                   "objective, whose result can drift by a few pixels)")
    p.add_argument("--prior", default="dip", choices=["dip", "generator"],
                   help="dip: Deep Image Prior for x (generic); generator: x = GEN(w) (domain-specific)")
    p.add_argument("--generator", help="module:callable returning the generator nn.Module (latent -> image)")
    p.add_argument("--latent-shape", help="latent shape, e.g. 1,512 (default: the generator's latent_shape)")
    p.add_argument("--output-range", default="0,1", help="value range of the generator's images, e.g. -1,1")
    p.add_argument("--no-sphere", action="store_true", help="do not keep the latent on the sphere (PULSE)")
    p.add_argument("--features", help="module:callable returning a feature network for a perceptual loss")
    p.add_argument("--save-code", help="also write the found code grid to this .safetensors file")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=SEED, default=0)
    p.set_defaults(func=_cmd_deblur)
