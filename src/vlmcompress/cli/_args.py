"""What several commands' parsers share: argument types, option groups, the one-line parse error and the snake_case spellings."""

from __future__ import annotations

import argparse


def _whole_number(minimum: int):
    """An argparse type: a whole number >= ``minimum``, checked at parse time."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number >= {minimum}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected a whole number >= {minimum}, got {value}")
        return value
    return parse


_positive_int = _whole_number(1)


_nonnegative_int = _whole_number(0)


def _fraction(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1), got {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1), got {value}")
    return value


def _names(text):
    """'vision,text' -> ['vision', 'text'] (with action="extend", repeated flags accumulate)."""
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"expected comma-separated names, got {text!r}")
    return names


def defaults_of(declaration) -> dict:
    """The defaults an option set declares once: a dataclass's field defaults, or a function's keyword defaults. A
    parser takes its defaults from here rather than writing them again."""
    import dataclasses
    import inspect

    if dataclasses.is_dataclass(declaration):
        return {f.name: f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
                for f in dataclasses.fields(declaration)}
    return {name: p.default for name, p in inspect.signature(declaration).parameters.items()
            if p.default is not inspect.Parameter.empty}


def _add_common(parser):
    """Flags every subcommand takes (after the subcommand as well as before it)."""
    parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show full tracebacks on errors")
    parser.add_argument("--verbose", "-v", dest="verbosity", action="store_const", const=1, default=argparse.SUPPRESS,
                        help="show the libraries' own logs and warnings too")
    parser.add_argument("--quiet", "-q", dest="verbosity", action="store_const", const=-1, default=argparse.SUPPRESS,
                        help="no progress bars: results and errors only")


def _add_dataset_args(parser, purpose, split):
    parser.add_argument(f"--{purpose}-dataset", "--dataset", dest="dataset", metavar="DATA",
                        help=f"{purpose} data (--dataset is the older spelling): a datasets.save_to_disk folder or Hub "
                        "data set with "
                        f"image/text/label columns (default, for the embedded teachers and folders made from them: "
                        f"the embedded digits {split} split; any other model needs its own, or names "
                        "vlmcompress/digits-train)")
    parser.add_argument("--split", default=split, help=f"split of --dataset (default: {split})")
    from ..data.sources import CAPTION_COLUMN, IMAGE_COLUMN, LABEL_COLUMN  # torch-free

    parser.add_argument("--image-column", default=IMAGE_COLUMN, help=f"image column of --dataset (default: {IMAGE_COLUMN})")
    parser.add_argument("--text-column", default=CAPTION_COLUMN,
                        help=f"caption column of --dataset (default: {CAPTION_COLUMN})")
    parser.add_argument("--label-column", default=LABEL_COLUMN, help=f"label column of --dataset (default: {LABEL_COLUMN})")


OUTPUT_RULE = ("It must be a new or empty folder, or an earlier vlmcompress output (with --overwrite); a folder holding "
               "anything else, the current folder and its parents are refused. It appears whole, or not at all.")


def _add_model_and_output(parser, what):
    parser.add_argument("model", nargs="?", default=None,
                        help="save_pretrained folder or Hub id (default: the embedded teacher)")
    parser.add_argument("--output-dir", "-o", required=True, help=f"folder for the {what} checkpoint. {OUTPUT_RULE}")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace --output-dir when it holds an earlier vlmcompress result (never anything else)")


def _add_eval_set_args(parser, aliases=False):
    """Where accuracy is measured: the user's evaluation set and its protocol. ``aliases``: the evaluate command also
    takes the older --dataset/--split/--image-column/--text-column/--label-column spellings."""
    from ..embedded.digits import DATASET_NAME as EMBEDDED  # not vlmcompress.evaluation: --help must not import torch
    from ..data.sources import LABEL_COLUMN
    from ..report import EVAL_SPLIT, EVAL_TASKS, ON_BAD_SAMPLE, TEMPLATES

    def names(flag, old):
        return (flag, old) if aliases else (flag,)

    g = parser.add_argument_group(
        "evaluation set",
        "Accuracy is measured on --eval-dataset. Without it, the embedded benchmark is used for an embedded model (and "
        "folders made from one); any other model gets size, memory and latency only, and the report says accuracy was "
        "not measured.")
    g.add_argument(*names("--eval-dataset", "--dataset"), dest="eval_dataset", metavar="DATA",
                   help=f"a datasets.save_to_disk folder, an image folder (one subfolder per class), a CSV/JSON(L) file "
                   f"of image paths and captions, a Hub data set name, {EMBEDDED} (the embedded benchmark) or none")
    g.add_argument(*names("--eval-split", "--split"), dest="eval_split", default=EVAL_SPLIT,
                   help=f"split of --eval-dataset (default: {EVAL_SPLIT}; a set with one split uses it)")
    g.add_argument("--eval-config", help="configuration name of a Hub --eval-dataset")
    g.add_argument(*names("--eval-image-column", "--image-column"), dest="eval_image_column",
                   help="image column (default: the first of image, img, jpg, png, image_path, file_name)")
    g.add_argument(*names("--eval-caption-column", "--text-column"), dest="eval_caption_column",
                   help="caption column: a string, or a list of strings per image; rows repeating an image are grouped "
                   "(default: the first of captions, caption, text, sentences)")
    g.add_argument(*names("--eval-label-column", "--label-column"), dest="eval_label_column",
                   help="datasets.ClassLabel column whose names are the zero-shot classes (default: "
                   f"{LABEL_COLUMN})")
    g.add_argument("--on-bad-sample", dest="on_bad_sample", default=ON_BAD_SAMPLE[0], choices=ON_BAD_SAMPLE,
                   help="an unreadable image, an empty class folder or an empty caption: error (refused before any "
                   "work, naming one) or skip (left out, counted in one warning line); default: " + ON_BAD_SAMPLE[0])
    g.add_argument("--eval-task", default=EVAL_TASKS[0], choices=EVAL_TASKS,
                   help="protocol: auto (zero-shot when there is a ClassLabel, retrieval when there are captions, "
                   "captioning for a captioner), or one of them by name; default: " + EVAL_TASKS[0])
    g.add_argument("--templates", default=TEMPLATES, metavar="SET|FILE",
                   help="zero-shot prompts: default ('a photo of a {}.' and two more), openai_imagenet (CLIP's 80 "
                   f"ImageNet templates) or a text file with one template per line, each with {{}} (default: {TEMPLATES})")
    g.add_argument("--max-eval-samples", type=_positive_int, default=None,
                   help="evaluate on at most this many images (a seeded random subset)")
    g.add_argument("--images-per-number", type=_positive_int, default=None,
                   help=f"{EMBEDDED} only: test images per number (default 100, the full test split)")


def _add_eval_and_loading(parser):
    """The before/after evaluation and loading options every command that writes a checkpoint takes."""
    from ..report import LATENCY_BATCH_SIZE, LATENCY_ROUNDS

    _add_eval_set_args(parser)
    parser.add_argument("--latency-batch-size", type=_positive_int, default=LATENCY_BATCH_SIZE,
                        help=f"batch size of the timed forward (default {LATENCY_BATCH_SIZE})")
    parser.add_argument("--latency-rounds", type=_positive_int, default=LATENCY_ROUNDS,
                        help="interleaved rounds in which the model before and after take turns to be timed; the card "
                        f"shows the median ratio and its range (default {LATENCY_ROUNDS})")
    parser.add_argument("--no-eval", action="store_true", help="skip the before/after evaluation")
    parser.add_argument("--trust-remote-code", action="store_true", help="allow a checkpoint's own modeling code")
    _add_common(parser)


class _Parser(argparse.ArgumentParser):
    """A parse error is one line (what was wrong and where help is), not the usage block."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}; see --help\n")


def _kebab_case(parser: argparse.ArgumentParser, argv: list) -> list:
    """``argv`` with snake_case option names (``--head_ratio``, as ``distill`` and recipes spell them) in this parser's
    kebab-case (``--head-ratio``): both spellings are read everywhere. Only names of the command's own options change."""
    command = next((a for a in argv if not a.startswith("-")), None)
    subparsers = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
    known = set(parser._option_string_actions)
    if subparsers is not None and command in subparsers.choices:
        known |= set(subparsers.choices[command]._option_string_actions)
    out = []
    for arg in argv:
        name, eq, value = arg.partition("=")
        if arg.startswith("--") and "_" in name and name not in known and name.replace("_", "-") in known:
            arg = name.replace("_", "-") + eq + value
        out.append(arg)
    return out
