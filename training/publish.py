"""Publish a saved pipeline folder to the Hugging Face Hub with a model card.

    python -m training.publish models/ddpm-pixel --repo-id user/mnist-ddpm [--private]
    python -m training.publish models/ddpm-pixel --repo-id user/mnist-ddpm --dry-run --dry-run-dir /tmp/upload

The token comes from HF_TOKEN or `huggingface-cli login`; it is never written anywhere.
"""

from __future__ import annotations

import argparse
import sys

from .hub import publish


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", help="a saved pipeline folder (model_index.json, safetensors weights)")
    parser.add_argument("--repo-id", required=True, help="the Hub repo, 'user/name'")
    parser.add_argument("--private", action="store_true", help="create the repo as private")
    parser.add_argument(
        "--dry-run", action="store_true", help="write the folder that would be uploaded; upload nothing"
    )
    parser.add_argument("--dry-run-dir", default="hub-upload", help="where --dry-run writes (must be new or empty)")
    args = parser.parse_args(argv)
    result = publish(
        args.folder, args.repo_id, private=args.private, dry_run_dir=args.dry_run_dir if args.dry_run else None
    )
    print(f"Dry run: wrote the upload to {result}" if args.dry_run else f"Published {args.folder} to {result}")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
