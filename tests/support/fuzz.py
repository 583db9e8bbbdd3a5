"""Fuzz every public endpoint of the app with bad and extreme inputs; each must answer with a gr.Error or a valid result.

    python -m tests.support.fuzz                      # 300 inputs per endpoint in-process + 30 per endpoint over HTTP
    python -m tests.support.fuzz --count 50 --client-count 5 --models-dir models

In-process, each endpoint's Python function (found from app.demo, so no endpoint is missed) gets a valid small
input with one to three arguments replaced by a value from hand lists and random draws: wrong types, NaN/±inf,
negative/huge numbers (10**400 included), empty/enormous/odd-mode images, malformed files, over-long strings.
The outcome must be a ``gr.Error`` with a message or a result of the right form; anything else is a crash,
reported with the endpoint and the input. Then a share of the inputs goes through ``gradio_client`` against a
served app on 127.0.0.1; the hidden (ui_*) events get bad inputs and crafted select-event data through raw HTTP
(tests/support/gradio_http.py: an answer or a clear error without server paths, never an HTTP 5xx); the image editor's
``accept_blobs`` component-server call gets crafted fields and files (never an HTTP 5xx); and the server must
still answer a normal request. By default the models are tiny random ones of the real shapes (built in a
temporary folder) so that accepted extreme settings stay fast.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import math
import os
import random
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]

# Valid small inputs per endpoint function (by Python name), mutated by the fuzzer.
BASE_INPUTS = {
    "sample_stream": ["pixel", "DDIM", 3, 0.0, 0, 2, 3, 1.0, 2.0],
    "forward_process": [["linear"], 100, 1e-4, 0.02, 0, None, 10, 0],
    "reconstruct": [0, None, 0, 1.0],
    "prior_samples": [2, 0, 4.0],
    "interpolate": [0, 60, 3],
    "traverse": [0, None, 0, 3.0, 3],
    "latent_map": [],
    "decode_point": [0.0, 0.0],
    "inpaint": [7, None, "left half", "DDIM", 3, 1, 1, 0],
    "schedule_plot": [["linear"], 100, 1e-4, 0.02],
    "steps_quality": ["latent", 1, 0],
    "walk_seeds": ["latent", 0, 1, 2, 2],
    "ddim_invert": ["latent", 3, None, 2],
    "walk_digits": ["latent", 0, 60, 2, 2],
    # the training lab: one-second runs with few steps (a bad value ends the call before any training)
    "train_diffusion": ["moons", None, "linear", 10, 1, 0],
    "train_vae": [1.0, 1, 0],
    "stop_training": [],
    "preview_target": ["rings", None],
}
# Endpoints that show the session's trained lab model (a gr.State the page holds): called in-process they only see
# "train first"; tests/app/test_lab_api.py drives them over HTTP after a training run, bad input included.
NEEDS_SESSION_STATE = ("reverse_process", "forward_and_field")
KINDS = {
    "Slider": "number",
    "Number": "number",
    "Dropdown": "choice",
    "Radio": "choice",
    "CheckboxGroup": "choices",
    "Sketchpad": "image",
    "ImageEditor": "image",
}

# ---------------------------------------------------------------- bad and extreme values


def malformed_files(folder: Path) -> list[str]:
    """Files an upload could be: random bytes named .png, a truncated PNG, a text file, an empty file."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((40, 40), 200, np.uint8)).save(folder / "good.png")
    files = {
        "random.png": os.urandom(2000),
        "truncated.png": (folder / "good.png").read_bytes()[:60],
        "text.png": b"not an image\n" * 10,
        "empty.png": b"",
        "script.py": b"import os\nos.system('true')\n",
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return [str(folder / name) for name in files]


def bad_numbers(rng: random.Random) -> list:
    return [
        None,
        math.nan,
        math.inf,
        -math.inf,
        -1,
        -(10**9),
        10**9,
        10**400,
        -(10**400),
        1e308,
        -1e308,
        5e-324,
        -0.0,
        0.5,
        2.5,
        True,
        False,
        "5",
        "abc",
        "",
        "nan",
        "1e999",
        [],
        [3],
        {},
        {"value": 3},
        "x" * 10_000,
        rng.uniform(-1e6, 1e6),
        rng.randint(-(2**63), 2**63),
        rng.random(),
        float(rng.randint(0, 10**6)),
    ]


def bad_strings(rng: random.Random) -> list:
    return [
        None,
        "",
        " ",
        "x" * 100_000,
        "../../etc/passwd",
        "/etc/passwd",
        "user/some-repo",
        "models/vae",
        "ddim",
        "DDPM ",
        "\x00",
        "🙂" * 50,
        "<script>alert(1)</script>",
        3,
        2.5,
        math.nan,
        True,
        [],
        ["pixel"],
        {"a": 1},
        "".join(chr(rng.randint(1, 0x2FFF)) for _ in range(rng.randint(1, 40))),
    ]


def bad_lists(rng: random.Random) -> list:
    return [
        None,
        [],
        "linear",
        ["linear"] * 1000,
        ["nope"],
        [None],
        [[]],
        [{"a": 1}],
        [3, 4],
        ["linear", math.nan],
        ["linear", "linear"],
        ["x" * 100_000],
        {"linear": True},
        7,
        rng.sample(["linear", "sigmoid", "scaled_linear", "squaredcos_cap_v2", "cosine"], k=rng.randint(1, 4)),
    ]


def bad_images(rng: random.Random, files: list[str]) -> list:
    """What an editor input can hold after Gradio's decoding: None or a dict of pictures (numeric arrays of any
    shape and dtype, PIL images of every mode, files) — raw JSON never reaches it (Gradio's data model refuses it)."""
    from PIL import Image

    u8 = lambda *shape: np.asarray(np.random.default_rng(rng.randint(0, 99)).integers(0, 256, shape), np.uint8)
    arrays = [
        np.zeros((0, 0), np.uint8),
        np.zeros((0, 5, 4), np.uint8),
        np.zeros((5, 0)),
        u8(1, 1),
        u8(1, 1, 4),
        u8(3000, 20),
        u8(2049, 2049, 4) if rng.random() < 0.05 else u8(2100, 3),
        u8(2048, 2048, 4) if rng.random() < 0.05 else u8(512, 512, 4),
        u8(28, 28),
        u8(28, 28, 2),
        u8(28, 28, 5),
        u8(2, 28, 28, 4),
        u8(28),
        np.full((28, 28), np.nan, np.float32),
        np.full((28, 28, 3), np.inf),
        np.full((40, 40), -5.0),
        np.full((40, 40), 1e30),
        np.ones((40, 40), bool),
        np.asarray(np.random.default_rng(0).integers(-(2**40), 2**40, (30, 30))),
        np.zeros((28, 28, 4), np.uint8),
        np.array(7),
        np.zeros((28, 28), np.float16),
        np.full((28, 28, 4), 255, np.uint16),
    ]
    pil = [Image.new(mode, (30, 30)) for mode in ("1", "L", "P", "I;16", "I", "F", "CMYK", "LA", "RGBA")]
    dicts = [
        {},
        {"composite": None},
        {"background": None, "layers": [], "composite": None},
        {"composite": u8(28, 28, 4), "layers": [None, u8(5, 5), "x", 3]},
        {"layers": "notalist"},
        {"background": u8(0, 0), "layers": [u8(28, 28, 4)]},
        {"composite": "x" * 5000},
        {"background": u8(28, 28, 3), "layers": [np.full((28, 28, 4), np.nan)]},
        {"composite": {"composite": 1}},
    ]
    contents = [None, "", "x" * 100_000, *files, *arrays, *pil]
    return [
        None,
        *dicts,
        *({"background": c, "layers": [], "composite": c} for c in contents),
        *({"background": arrays[8], "layers": [c], "composite": None} for c in contents),
    ]


def value_pools(rng: random.Random, files: list[str]) -> dict[str, list]:
    return {
        "number": bad_numbers(rng),
        "choice": bad_strings(rng),
        "choices": bad_lists(rng),
        "image": bad_images(rng, files),
    }


def extremes(component) -> list:
    """The component's own bounds (valid extremes, and just beyond them)."""
    low, high = getattr(component, "minimum", None), getattr(component, "maximum", None)
    values = []
    for bound, step in ((low, -1), (high, 1)):
        if isinstance(bound, (int, float)):
            values += [bound, bound + step, bound + 0.5 * step]
    return values


def make_cases(fn_name: str, components: list, count: int, seed: int, files: list[str]) -> list[list]:
    """``count`` argument lists: the base input with 1–3 arguments swapped for bad/extreme values (wrong kinds too)."""
    rng = random.Random(f"{fn_name}-{seed}")
    base = BASE_INPUTS[fn_name]
    if not components:
        return [[] for _ in range(min(count, 3))]
    kinds = [KINDS.get(type(c).__name__, "choice") for c in components]
    cases = []
    for _ in range(count):
        pools = value_pools(rng, files)
        args = list(base)
        for index in rng.sample(range(len(args)), k=min(len(args), rng.choice([1, 1, 1, 2, 3]))):
            roll = rng.random()
            if roll < 0.1:
                pool = extremes(components[index]) or pools[kinds[index]]
            elif roll < 0.25 and kinds[index] != "image":
                pool = pools[rng.choice(["number", "choice", "choices"])]  # a JSON value of the wrong kind
            else:
                pool = pools[kinds[index]]
            args[index] = rng.choice(pool)
        cases.append(args)
    return cases


# ---------------------------------------------------------------- running one input


def public_endpoints(demo) -> dict[str, tuple]:
    """api_name → (function, input components, output components) for every public endpoint."""
    found = {}
    for block_fn in demo.fns.values():
        public = getattr(block_fn, "api_visibility", "public") == "public"
        if block_fn.api_name and public and block_fn.fn is not None and block_fn.fn.__name__ not in NEEDS_SESSION_STATE:
            found[block_fn.api_name] = (block_fn.fn, list(block_fn.inputs), list(block_fn.outputs))
    return found


def finish(result):
    """What the page shows once the endpoint is done. A generator endpoint's stream is folded as the browser folds
    it: a ``gr.skip()`` (an update that changes nothing) keeps the output's previous value. Async handlers (the
    cancellable heavy endpoints, playground/cancel.py) are run to their end on an event loop."""
    if inspect.iscoroutine(result):
        return asyncio.run(result)
    if hasattr(result, "__anext__"):

        async def drain():
            shown = None
            async for update in result:
                shown = fold(shown, update)
            return shown

        return asyncio.run(drain())
    if hasattr(result, "__next__"):
        shown = None
        for update in result:
            shown = fold(shown, update)
        return shown
    return result


def is_skip(value) -> bool:
    return isinstance(value, dict) and value == {"__type__": "update"}


def fold(shown, update):
    """The outputs after one streamed update: skipped outputs keep what ``shown`` had."""
    if not isinstance(update, tuple) or not isinstance(shown, tuple) or len(shown) != len(update):
        return shown if is_skip(update) else update
    return tuple(old if is_skip(new) else new for old, new in zip(shown, update))


def check_result(result, outputs: list) -> str | None:
    """None when the result fits the output components; else what is wrong."""
    from PIL import Image

    values = result if isinstance(result, (tuple, list)) and len(outputs) > 1 else (result,)
    if len(values) != len(outputs):
        return f"{len(values)} outputs for {len(outputs)} components"
    for value, component in zip(values, outputs):
        kind = type(component).__name__
        if kind == "Gallery":
            items = [v[0] if isinstance(v, tuple) else v for v in value]
            if not items or not all(isinstance(i, Image.Image) and i.width > 0 for i in items):
                return f"gallery holds {value!r:.200}"
        elif kind == "Image" and value is not None and not (isinstance(value, Image.Image) and value.width > 0):
            return f"image output is {type(value).__name__}"
        elif kind == "File" and value is not None and not Path(value).is_file():
            return f"file output {value!r} does not exist"
        elif kind == "JSON" and not all(math.isfinite(v) for v in value.values() if isinstance(v, float)):
            return f"JSON output holds non-finite numbers: {value}"
    return None


def run_case(fn, args: list, outputs: list) -> tuple[str, str]:
    """("ok" | "error" | "crash", detail)."""
    import gradio as gr

    try:
        result = finish(fn(*args))
    except gr.Error as error:
        message = str(getattr(error, "message", error))
        return ("error", message) if message.strip() else ("crash", "gr.Error without a message")
    except Exception as error:  # any other exception is the bug this driver looks for
        where = traceback.extract_tb(error.__traceback__)[-1]
        return "crash", f"{type(error).__name__}: {str(error)[:300]} at {where.filename}:{where.lineno}"
    problem = check_result(result, outputs)
    return ("crash", f"invalid result: {problem}") if problem else ("ok", "")


def short(args: list) -> str:
    def one(v):
        if isinstance(v, np.ndarray):
            return f"ndarray{v.shape}{v.dtype}"
        text = repr(v)
        return text if len(text) < 60 else text[:50] + f"…({len(text)} chars)"

    return "[" + ", ".join(one(a) for a in args) + "]"


def fuzz_in_process(count: int, seed: int = 0, files: list[str] | None = None, demo=None) -> dict:
    """Every public endpoint × ``count`` inputs; returns {api_name: {"ok", "error", "crash": [(args, detail)], "seconds"}}."""
    if demo is None:
        import app

        demo = app.demo
    files = files if files is not None else malformed_files(Path(tempfile.mkdtemp(prefix="fuzz-files-")))
    report = {}
    for api_name, (fn, inputs, outputs) in public_endpoints(demo).items():
        counts = {"ok": 0, "error": 0, "crash": [], "seconds": 0.0}
        start = time.perf_counter()
        for args in make_cases(fn.__name__, inputs, count, seed, files):
            outcome, detail = run_case(fn, args, outputs)
            if outcome == "crash":
                counts["crash"].append((short(args), detail))
            else:
                counts[outcome] += 1
        counts["seconds"] = time.perf_counter() - start
        report[api_name] = counts
    return report


# ---------------------------------------------------------------- through gradio_client against a served app


def to_client_value(value, component, folder: Path):
    """A fuzz value as the HTTP API carries it: images become uploaded PNG/raw files, numbers JSON."""
    from gradio_client import handle_file
    from PIL import Image

    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON cannot carry NaN/inf; the client sends null
    if isinstance(value, int) and abs(value) > 2**63:
        return str(value)
    if KINDS.get(type(component).__name__) != "image":
        return value if not isinstance(value, (np.ndarray, Image.Image, dict)) else None
    path = None
    if isinstance(value, str) and len(value) < 1000 and os.path.isfile(value):
        path = value
    elif isinstance(value, Image.Image):
        path = str(folder / f"upload-{id(value)}.png")
        value.save(path) if value.mode not in ("I;16", "CMYK", "F") else value.save(path.replace(".png", ".tiff"))
        path = path if Path(path).exists() else path.replace(".png", ".tiff")
    elif (
        isinstance(value, np.ndarray)
        and value.dtype == np.uint8
        and value.ndim in (2, 3)
        and value.size
        and value.shape[-1] in (1, 3, 4, *value.shape[1:2])
    ):
        path = str(folder / f"upload-{id(value)}.png")
        try:
            Image.fromarray(value.squeeze() if value.ndim == 3 and value.shape[-1] == 1 else value).save(path)
        except (TypeError, ValueError):
            path = None
    if path is None:
        return None
    return {"background": handle_file(path), "layers": [], "composite": handle_file(path)}


def fuzz_client(url: str, per_endpoint: int, seed: int = 1, demo=None) -> dict:
    """Bad inputs over HTTP: each must be answered by an AppError with a message (no traceback), or a result.

    Values the components themselves reject (e.g. text for a Number) get Gradio's own message; crashes inside
    the app's functions are caught by :func:`fuzz_in_process`, which tells a gr.Error from any other exception.
    """
    from gradio_client import Client

    if demo is None:
        import app

        demo = app.demo
    folder = Path(tempfile.mkdtemp(prefix="fuzz-client-"))
    files = malformed_files(folder)
    client = Client(url, verbose=False)
    report = {}
    for api_name, (fn, inputs, _) in public_endpoints(demo).items():
        counts = {"ok": 0, "error": 0, "crash": []}
        for args in make_cases(fn.__name__, inputs, per_endpoint, seed, files):
            sent = [to_client_value(v, c, folder) for v, c in zip(args, inputs)]
            try:
                client.predict(*sent, api_name=f"/{api_name}")
                counts["ok"] += 1
            except Exception as error:
                message = str(error)  # the server runs with show_error=True, as app.py does
                if not message.strip() or message == "None" or "Traceback" in message or 'File "' in message:
                    counts["crash"].append((short(sent), f"{type(error).__name__}: {message[:300]}"))
                else:
                    counts["error"] += 1
        report[api_name] = counts
    return report


def normal_request_works(url: str) -> bool:
    """The served app still answers a valid request (the schedule plot needs no model)."""
    from gradio_client import Client

    import app

    name = next(n for n, (fn, _, _) in public_endpoints(app.demo).items() if fn.__name__ == "schedule_plot")
    return Client(url, verbose=False).predict(*BASE_INPUTS["schedule_plot"], api_name=f"/{name}") is not None


def print_report(title: str, report: dict) -> int:
    crashes = 0
    print(f"\n{title}")
    for api_name, counts in report.items():
        crashes += len(counts["crash"])
        tried = counts["ok"] + counts["error"] + len(counts["crash"])
        seconds = f", {counts['seconds']:.1f} s" if "seconds" in counts else ""
        print(
            f"  /{api_name:22s} {tried:4d} inputs: {counts['ok']:4d} answered, {counts['error']:4d} gr.Error, "
            f"{len(counts['crash']):3d} crashes{seconds}"
        )
        kinds: dict[str, list] = {}
        for args, detail in counts["crash"]:
            kinds.setdefault(detail, []).append(args)
        for detail, inputs in kinds.items():  # each kind of crash once, with its first input
            print(f"      CRASH ×{len(inputs)} {detail}\n            e.g. input {inputs[0]}")
    return crashes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=300, help="inputs per endpoint, in-process")
    parser.add_argument("--client-count", type=int, default=30, help="inputs per endpoint through gradio_client")
    parser.add_argument("--models-dir", default=None, help="models folder (default: tiny random models)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(2)
    from tests.support.app_server import make_tiny_models

    models_dir = args.models_dir or str(make_tiny_models(Path(tempfile.mkdtemp(prefix="fuzz-models-"))))
    os.environ["PLAYGROUND_MODELS_DIR"] = str(Path(models_dir).resolve())
    crashes = print_report(
        f"in-process ({args.count} inputs per endpoint, models {models_dir})", fuzz_in_process(args.count, args.seed)
    )
    if args.client_count:
        from tests.support.fuzz_raw import fuzz_component_server, fuzz_hidden
        from tests.support.load import serve_app

        with serve_app(models_dir) as (url, _):
            crashes += print_report(
                f"through gradio_client ({args.client_count} per endpoint)", fuzz_client(url, args.client_count)
            )
            crashes += print_report(
                f"hidden events through raw HTTP ({args.client_count} per event)", fuzz_hidden(url, args.client_count)
            )
            crashes += print_report(
                f"the component server ({10 * args.client_count} calls)",
                fuzz_component_server(url, 10 * args.client_count),
            )
            alive = normal_request_works(url)
        print(f"\nserver answers a normal request afterwards: {alive}")
        crashes += not alive
    print(f"\ntotal crashes: {crashes}")
    return 1 if crashes else 0


if __name__ == "__main__":
    sys.exit(main())
